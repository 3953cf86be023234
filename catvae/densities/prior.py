"""``prior``: the VAE's prior N(0, I) for every class, what a conditional VAE samples from (config ``conf/latent/prior.yaml``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self

import torch

from catvae.densities.base import ClassDensity


class Prior(ClassDensity):
    """N(0, I) for every class: z = θ ⊙ ε̄ (centre 0, spread 1). Labels change nothing; nothing to fit
    but the shape (L classes × D dimensions)."""

    name = "prior"
    mean: torch.Tensor  # zeros, L×D

    def fit(self, codes: torch.Tensor, labels: torch.Tensor, num_classes: int) -> Self:
        return self.load_state_dict({}, num_classes, codes.shape[1])

    def draw(self, labels: torch.Tensor, noise: torch.Tensor, generator: torch.Generator | None = None):
        return torch.zeros_like(noise), noise

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: Mapping[str, torch.Tensor], num_classes: int, latent_dim: int) -> Self:
        self.mean = torch.zeros(num_classes, latent_dim)
        return self
