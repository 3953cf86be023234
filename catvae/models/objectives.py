"""§3.3 VAE objectives: reconstruction + a regulariser, ELBO (eq. 1) or MMD (eq. 2).

One VAE module (``catvae.models.vae.VAE``) takes one of these objects; the config names its class
(``conf/vae/elbo.yaml`` ↔ :class:`ELBO`, ``conf/vae/mmd.yaml`` ↔ :class:`MMD`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bernoulli_nll(logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """−log p(x|z) of a Bernoulli decoder, summed over pixels, one value per image (nats).

    Pixels are grey levels in [0, 1]; the continuous-target cross entropy is the usual choice.
    """
    return F.binary_cross_entropy_with_logits(logits, images.flatten(1), reduction="none").sum(dim=1)


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) ‖ N(0, I)) in closed form, summed over dimensions, one per row (eq. 1)."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def gaussian_kernel(x: torch.Tensor, y: torch.Tensor, scale: float) -> torch.Tensor:
    """k(x, y) = exp(−‖x − y‖² / scale) for all pairs of rows of x and y."""
    return torch.exp(-torch.cdist(x, y).pow(2) / scale)


def mmd(x: torch.Tensor, y: torch.Tensor, scale: float) -> torch.Tensor:
    """Unbiased estimate of MMD²(p ‖ q) from samples x ~ p, y ~ q (eq. 2) with a Gaussian kernel.

    The within-sample means leave out the k(x_i, x_i) terms, so the estimate is ≈ 0 (and can be
    slightly negative) when both samples come from one distribution.
    """
    n, m = x.shape[0], y.shape[0]
    kxx = gaussian_kernel(x, x, scale)
    kyy = gaussian_kernel(y, y, scale)
    kxy = gaussian_kernel(x, y, scale)
    within_x = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    within_y = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return within_x + within_y - 2.0 * kxy.mean()


class Objective:
    """A VAE regulariser: given q(z|x)'s parameters and a sample z, the per-batch penalty."""

    name: str = "objective"

    def regularizer(self, z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class ELBO(Objective):
    """Eq. 1: reconstruction + KL(q(z|x) ‖ N(0, I)), the KL averaged over the batch."""

    name = "elbo"

    def regularizer(self, z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return gaussian_kl(mean, logvar).mean()


class MMD(Objective):
    """Eq. 2 (InfoVAE): reconstruction + weight · MMD(q(z) ‖ N(0, I)).

    MMD is estimated between the batch's latent samples and as many prior samples, with the
    kernel k(x, y) = exp(−‖x − y‖² / scale). ``scale=None`` uses D², as the InfoVAE reference
    code does. Because the reconstruction is summed over 784 pixels (≈ 100 nats a image) while
    MMD² is below 1, the weight must be large for the regulariser to shape q(z).
    """

    name = "mmd"

    def __init__(self, weight: float = 1000.0, scale: float | None = None):
        if not weight >= 0:
            raise ValueError(f"weight={weight!r} is not allowed: a number >= 0")
        if scale is not None and not scale > 0:
            raise ValueError(f"scale={scale!r} is not allowed: a number > 0, or None for D²")
        self.weight = float(weight)
        self.scale = scale

    def regularizer(self, z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        scale = self.scale if self.scale is not None else float(z.shape[1] ** 2)
        prior = torch.randn_like(z)
        return self.weight * mmd(z, prior, scale)
