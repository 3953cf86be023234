"""§3.5 Simple generator and the class statistics it draws from."""

import math

import pytest
import torch

from catvae.core.errors import UserError
from catvae.densities.diag import ClassLatentStats
from catvae.generators.gaussian import Medium1, Medium2, Simple, ThetaError, target_labels


def make_stats() -> ClassLatentStats:
    return ClassLatentStats(
        mean=torch.tensor([[0.0, 0.0], [5.0, -3.0]]), std=torch.tensor([[1.0, 2.0], [0.5, 4.0]]), count=torch.tensor([10, 10])
    )


def test_statistics_fit_known_values(tmp_path):
    codes = torch.tensor([[0.0, 1.0], [2.0, 3.0], [10.0, 10.0], [10.0, 14.0]])
    labels = torch.tensor([0, 0, 1, 1])
    stats = ClassLatentStats().fit(codes, labels, num_classes=2)
    assert stats.mean.tolist() == [[1.0, 2.0], [10.0, 12.0]]
    assert stats.std[0].tolist() == pytest.approx([math.sqrt(2), math.sqrt(2)])
    assert stats.std[1].tolist() == pytest.approx([0.0, math.sqrt(8)])
    stats.save(tmp_path / "stats.pt")
    again = ClassLatentStats.load(tmp_path / "stats.pt")
    assert torch.equal(again.mean, stats.mean) and torch.equal(again.count, torch.tensor([2, 2]))


def test_statistics_need_two_members_per_class():
    with pytest.raises(ValueError, match="class 1 has 0"):
        ClassLatentStats().fit(torch.zeros(3, 2), torch.tensor([0, 0, 2]), num_classes=3)


def test_theta_zero_gives_the_class_mean():
    z = Simple(theta=0.0, n=3).sample(make_stats(), torch.tensor([1, 1, 0]))
    assert z.tolist() == [[5.0, -3.0], [5.0, -3.0], [0.0, 0.0]]


def test_mean_of_n_draws_has_std_theta_sigma_over_sqrt_n():
    generator = Simple(theta=0.5, n=4)
    assert generator.params()["theta_eff"] == pytest.approx(0.25)
    z = generator.sample(make_stats(), torch.ones(200_000, dtype=torch.long), torch.Generator().manual_seed(0))
    assert z.mean(0).tolist() == pytest.approx([5.0, -3.0], abs=0.01)
    assert z.std(0).tolist() == pytest.approx([0.5 * 0.5 / 2, 0.5 * 4.0 / 2], rel=0.01)


def test_same_seed_same_codes():
    stats, labels = make_stats(), target_labels(2, 3)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1]
    first = Simple(0.4, 2).sample(stats, labels, torch.Generator().manual_seed(7))
    second = Simple(0.4, 2).sample(stats, labels, torch.Generator().manual_seed(7))
    assert torch.equal(first, second)


@pytest.mark.parametrize(
    ("theta", "n", "message"),
    [
        (-0.1, 1, "theta=-0.1 is not allowed: a number >= 0"),
        (float("nan"), 1, "theta=nan is not allowed: a number >= 0"),
        ("big", 1, "theta='big' is not allowed: a number >= 0"),
        (0.4, 0, "n=0 is not allowed: an integer >= 1"),
        (0.4, 1.5, "n=1.5 is not allowed: an integer >= 1"),
    ],
)
def test_bad_parameters_are_named(theta, n, message):
    """A generator names its own arguments (plain ValueErrors); the command names the config key."""
    with pytest.raises(ValueError) as caught:
        Simple(theta, n)
    assert str(caught.value) == message and not isinstance(caught.value, UserError)


def test_medium_generators_reduce_to_simple_when_theta_is_constant():
    stats, labels = make_stats(), target_labels(2, 50)
    simple = Simple(0.3, 2).sample(stats, labels, torch.Generator().manual_seed(1))
    medium1 = Medium1([0.3, 0.3], 2).sample(stats, labels, torch.Generator().manual_seed(1))
    medium2 = Medium2([[0.3, 0.3], [0.3, 0.3]], 2).sample(stats, labels, torch.Generator().manual_seed(1))
    assert torch.equal(simple, medium1) and torch.equal(simple, medium2)
    assert medium1.shape == (100, 2)


def test_medium_theta_shapes_and_partial_mappings():
    stats = make_stats()
    assert Medium1([0.0, 2.0]).scale(stats).tolist() == [[0.0, 2.0], [0.0, 2.0]]
    assert Medium1({"1": 0.5}, fill=1.0).scale(stats).tolist() == [[1.0, 0.5], [1.0, 0.5]]
    assert torch.allclose(Medium2({"1": {"0": 0.2}}, fill=0.7).scale(stats), torch.tensor([[0.7, 0.7], [0.2, 0.7]]))
    # θ = 0 in one dimension: that coordinate is exactly the class mean.
    z = Medium1([0.0, 1.0], n=1).sample(stats, torch.tensor([1] * 20), torch.Generator().manual_seed(0))
    assert (z[:, 0] == 5.0).all() and z[:, 1].std() > 1.0
    assert Medium2([[0.2, 0.4], [0.6, 0.8]], n=4).params(stats)["theta_eff"] == pytest.approx(0.5 / 2)


@pytest.mark.parametrize(
    ("generator", "path", "message"),
    [
        (lambda: Medium1([0.1, 0.2, 0.3]), (), "theta=[0.1, 0.2, 0.3] is not allowed: a number or a list of 2 numbers >= 0"),
        (lambda: Medium1({"5": 0.1}), ("5",), "theta[5]=0.1 is not allowed: an index from 0 to 1"),
        (lambda: Medium2([[0.1, -0.2], [0.0, 0.0]]), (0, 1), "theta[0][1]=-0.2 is not allowed: a number >= 0"),
        (lambda: Medium2([[0.1, 0.2], [0.0]]), (1,), "theta[1]=[0.0] is not allowed: a number or a list of 2 numbers >= 0"),
    ],
)
def test_medium_bad_theta_is_located(generator, path, message):
    """θ's errors locate the entry (``path``) so a command can name its config key."""
    with pytest.raises(ThetaError) as caught:
        generator().scale(make_stats())
    assert (caught.value.path, str(caught.value)) == (path, message)
    assert not isinstance(caught.value, UserError)
    # A number stands for every entry below it: Medium-2 rows of one θ each are fine.
    assert Medium2([0.1, 0.2]).scale(make_stats()).flatten().tolist() == pytest.approx([0.1, 0.1, 0.2, 0.2])
