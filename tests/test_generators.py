"""§3.5 Simple generator and the class statistics it draws from."""
import math

import pytest
import torch

from catvae.generators import Simple, target_labels
from catvae.statistics import ClassLatentStats


def make_stats() -> ClassLatentStats:
    return ClassLatentStats(mean=torch.tensor([[0.0, 0.0], [5.0, -3.0]]),
                            std=torch.tensor([[1.0, 2.0], [0.5, 4.0]]), count=torch.tensor([10, 10]))


def test_statistics_fit_known_values(tmp_path):
    codes = torch.tensor([[0.0, 1.0], [2.0, 3.0], [10.0, 10.0], [10.0, 14.0]])
    labels = torch.tensor([0, 0, 1, 1])
    stats = ClassLatentStats.fit(codes, labels, num_classes=2)
    assert stats.mean.tolist() == [[1.0, 2.0], [10.0, 12.0]]
    assert stats.std[0].tolist() == pytest.approx([math.sqrt(2), math.sqrt(2)])
    assert stats.std[1].tolist() == pytest.approx([0.0, math.sqrt(8)])
    stats.save(tmp_path / "stats.pt")
    again = ClassLatentStats.load(tmp_path / "stats.pt")
    assert torch.equal(again.mean, stats.mean) and torch.equal(again.count, torch.tensor([2, 2]))


def test_statistics_need_two_members_per_class():
    with pytest.raises(ValueError, match="class 1 has 0"):
        ClassLatentStats.fit(torch.zeros(3, 2), torch.tensor([0, 0, 2]), num_classes=3)


def test_theta_zero_gives_the_class_mean():
    z = Simple(theta=0.0, n=3).sample(make_stats(), torch.tensor([1, 1, 0]))
    assert z.tolist() == [[5.0, -3.0], [5.0, -3.0], [0.0, 0.0]]


def test_mean_of_n_draws_has_std_theta_sigma_over_sqrt_n():
    generator = Simple(theta=0.5, n=4)
    assert generator.theta_eff == pytest.approx(0.25)
    z = generator.sample(make_stats(), torch.ones(200_000, dtype=torch.long), torch.Generator().manual_seed(0))
    assert z.mean(0).tolist() == pytest.approx([5.0, -3.0], abs=0.01)
    assert z.std(0).tolist() == pytest.approx([0.5 * 0.5 / 2, 0.5 * 4.0 / 2], rel=0.01)


def test_same_seed_same_codes():
    stats, labels = make_stats(), target_labels(2, 3)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1]
    first = Simple(0.4, 2).sample(stats, labels, torch.Generator().manual_seed(7))
    second = Simple(0.4, 2).sample(stats, labels, torch.Generator().manual_seed(7))
    assert torch.equal(first, second)


@pytest.mark.parametrize(("theta", "n", "message"), [
    (-0.1, 1, "generator.theta=-0.1"), (float("nan"), 1, "generator.theta=nan"), ("big", 1, "generator.theta='big'"),
    (0.4, 0, "generator.n=0"), (0.4, 1.5, "generator.n=1.5"),
])
def test_bad_parameters_are_named(theta, n, message):
    with pytest.raises(ValueError, match=message):
        Simple(theta, n)
