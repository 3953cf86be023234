"""Eq. 4–5 metrics against hand-computed values."""

import math

import pytest
import torch

from catvae.evaluation.metrics import cosine_pairwise, cosine_to_reference, score_samples


def test_identical_images_have_cosine_one():
    images = torch.rand(1, 784).repeat(5, 1)
    assert cosine_pairwise(images).item() == pytest.approx(1.0, abs=1e-6)


def test_known_pairs():
    assert cosine_pairwise(torch.tensor([[1.0, 0.0], [0.0, 1.0]])).item() == pytest.approx(0.0, abs=1e-7)
    assert cosine_pairwise(torch.tensor([[1.0, 0.0], [1.0, 1.0]])).item() == pytest.approx(1 / math.sqrt(2))
    # Three vectors: pairs (a,b)=0, (a,c)=1/√2, (b,c)=1/√2 → mean √2/3.
    three = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    assert cosine_pairwise(three).item() == pytest.approx(math.sqrt(2) / 3, rel=1e-6)


def test_pairwise_matches_explicit_matrix():
    torch.manual_seed(0)
    images = torch.rand(30, 784)
    units = torch.nn.functional.normalize(images, dim=1)
    gram = units @ units.T
    explicit = (gram.sum() - gram.diagonal().sum()) / (30 * 29)
    assert cosine_pairwise(images).item() == pytest.approx(explicit.item(), rel=1e-5)


def test_cosine_to_reference():
    images = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert cosine_to_reference(images, torch.tensor([1.0, 1.0])).item() == pytest.approx(1 / math.sqrt(2))


def test_score_samples_per_label_and_overall():
    images = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    targets = torch.tensor([0, 0, 1, 1])
    predictions = torch.tensor([0, 1, 1, 1])  # label 0: 1/2 right, label 1: 2/2 right
    means = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    scores = score_samples(images, targets, predictions, means, num_classes=2)
    zero, one = scores["per_label"]["0"], scores["per_label"]["1"]
    assert zero["accuracy"] == 0.5 and one["accuracy"] == 1.0
    assert zero["cos_pairwise"] == pytest.approx(1.0) and one["cos_pairwise"] == pytest.approx(0.0, abs=1e-7)
    assert zero["cos_to_mean"] == pytest.approx(1.0) and one["cos_to_mean"] == pytest.approx(1 / math.sqrt(2))
    assert zero["objective"] == pytest.approx(1.0 + 0.5)
    assert scores["accuracy"] == 0.75
    assert scores["cos_pairwise"] == pytest.approx(0.5)
    assert scores["objective"] == pytest.approx(0.5 + 0.25)
    to_mean = score_samples(images, targets, predictions, means, num_classes=2, cos="to_mean")
    assert to_mean["objective"] == pytest.approx((1.0 + 1 / math.sqrt(2)) / 2 + 0.25)


def test_unknown_cos_choice_is_named():
    with pytest.raises(ValueError, match=r"^cos='median' is not allowed: one of pairwise, to_mean$"):  # its own argument
        score_samples(torch.rand(4, 2), torch.tensor([0, 0, 1, 1]), torch.tensor([0, 0, 1, 1]), torch.rand(2, 2), 2, "median")
