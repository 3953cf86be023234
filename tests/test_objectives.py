"""§3.3 objectives: the reconstruction term, KL closed form, MMD estimator."""

import math

import pytest
import torch

from catvae.models.objectives import ELBO, MMD, bernoulli_nll, gaussian_kl, mmd


def test_bernoulli_nll_matches_hand_computed_cross_entropy():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # p = 0.5 and 0.75
    images = torch.tensor([[1.0, 0.25]])
    expected = -math.log(0.5) - (0.25 * math.log(0.75) + 0.75 * math.log(0.25))
    assert bernoulli_nll(logits, images).item() == pytest.approx(expected, rel=1e-6)


def test_kl_is_zero_for_the_prior_and_known_for_a_shift():
    assert gaussian_kl(torch.zeros(1, 3), torch.zeros(1, 3)).item() == 0.0
    # KL(N(1, 1) || N(0, 1)) = 1/2 per dimension.
    assert gaussian_kl(torch.ones(1, 4), torch.zeros(1, 4)).item() == pytest.approx(2.0)


def test_kl_closed_form_agrees_with_monte_carlo():
    torch.manual_seed(0)
    mean, logvar = torch.tensor([[0.7, -1.2, 0.1]]), torch.tensor([[-0.5, 0.8, -2.0]])
    std = torch.exp(0.5 * logvar)
    z = mean + std * torch.randn(400_000, 3)
    log_q = torch.distributions.Normal(mean, std).log_prob(z).sum(1)
    log_p = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
    monte_carlo = (log_q - log_p).mean().item()
    assert gaussian_kl(mean, logvar).item() == pytest.approx(monte_carlo, abs=0.02)


def test_mmd_near_zero_for_one_distribution_and_positive_for_a_shift():
    torch.manual_seed(0)
    x, y = torch.randn(500, 10), torch.randn(500, 10)
    same = mmd(x, y, scale=100.0).item()
    shifted = mmd(x + 1.0, y, scale=100.0).item()
    assert abs(same) < 0.005
    assert shifted > 0.05
    assert shifted > 20 * abs(same)


def test_mmd_of_two_points_by_hand():
    x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([[2.0], [3.0]])
    k = lambda d: math.exp(-d * d / 2.0)  # noqa: E731
    expected = k(1) + k(1) - 2 * (k(2) + k(3) + k(1) + k(2)) / 4
    assert mmd(x, y, scale=2.0).item() == pytest.approx(expected, rel=1e-5)


def test_regularisers():
    z, mean, logvar = torch.zeros(8, 3), torch.ones(8, 3), torch.zeros(8, 3)
    assert ELBO().regularizer(z, mean, logvar).item() == pytest.approx(1.5)
    torch.manual_seed(0)
    assert MMD(weight=0.0).regularizer(z, mean, logvar).item() == 0.0
    with pytest.raises(ValueError) as caught:
        MMD(weight=-1.0)
    assert str(caught.value) == "weight=-1.0 is not allowed: a number >= 0"  # its own argument, no config key
    with pytest.raises(ValueError, match="scale=0 is not allowed: a number > 0, or None for D²"):
        MMD(weight=1.0, scale=0)
