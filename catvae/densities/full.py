"""``full``: one full-covariance Gaussian per class, N(μ_y, Σ_y = L_y L_yᵀ) (config ``conf/latent/full.yaml``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self

import torch

from catvae.densities.base import ClassDensity, Components, cholesky, expect, members, tensors


class FullGaussian(ClassDensity):
    """N(μ_y, Σ_y) per class with Σ_y the (unbiased) covariance of the class's codes; ``chol`` is L_y (L×D×D).

    Draw: z = μ_y + θ ⊙ (L_y ε̄), so Cov z = diag(θ) Σ_y diag(θ) / n. No fit options.
    """

    name = "full"
    mean: torch.Tensor  # μ_y, L×D
    chol: torch.Tensor

    def fit(self, codes: torch.Tensor, labels: torch.Tensor, num_classes: int) -> Self:
        means, covariances = [], []
        for label in range(num_classes):
            chosen = members(codes, labels, label, minimum=2).double()
            means.append(chosen.mean(0))
            covariances.append(torch.cov(chosen.T).reshape(codes.shape[1], codes.shape[1]))
        self.mean = torch.stack(means).to(codes.dtype)
        self.chol = cholesky(torch.stack(covariances)).to(codes.dtype)
        return self

    def draw(self, labels: torch.Tensor, noise: torch.Tensor, generator: torch.Generator | None = None):
        return self.mean[labels], torch.einsum("kij,kj->ki", self.chol[labels], noise)

    def gaussian_components(self) -> Components:
        covariances = self.chol @ self.chol.transpose(-1, -2)
        ones = torch.ones(1, dtype=self.mean.dtype, device=self.mean.device)
        return [(ones, self.mean[y, None], covariances[y, None]) for y in range(self.num_classes)]

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean.cpu(), "chol": self.chol.cpu()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor], num_classes: int, latent_dim: int) -> Self:
        mean, chol = tensors(state, ("mean", "chol"))
        shapes = f"has shapes {tuple(mean.shape)}, {tuple(chol.shape)}"
        ok = mean.shape == (num_classes, latent_dim) and chol.shape == (num_classes, latent_dim, latent_dim)
        expect(ok, shapes, num_classes, latent_dim)
        self.mean, self.chol = mean.float(), chol.float()
        return self
