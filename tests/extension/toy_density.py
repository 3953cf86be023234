"""A class density from outside catvae, for the extension test: a uniform box per class.

What a researcher writes to add a density (docs/extending.md): this module and one YAML
(``conf/latent/toy.yaml`` beside it), reached by ``hydra.searchpath`` and trusted by
``CATVAE_TRUSTED_TARGETS=toy_density.*``; nothing under ``catvae/`` changes.

Per class y the box [c_y - h_y, c_y + h_y] with c_y the midpoint of the class's codes' range and h_y
``scale`` times its half-width. Draw: centre c_y, spread h_y ⊙ u with u ~ U[-1, 1]^D from the
generator, so z = c_y + θ ⊙ h_y ⊙ u is uniform on the box shrunk by θ: mean c_y, standard
deviation θ h_y / √3. (It ignores ε̄: a box is not a Gaussian.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self

import torch

from catvae.core.errors import ArgumentError
from catvae.densities.base import ClassDensity, expect, members, tensors


class UniformBox(ClassDensity):
    """A uniform box per class: ``mean`` (c_y, L×D) and ``half`` (h_y, L×D)."""

    name = "toy"
    mean: torch.Tensor
    half: torch.Tensor

    def __init__(self, scale: float = 1.0) -> None:
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
            raise ArgumentError("scale", scale, "a number > 0")
        self.scale = float(scale)

    def fit(self, codes: torch.Tensor, labels: torch.Tensor, num_classes: int) -> Self:
        low = torch.stack([members(codes, labels, y).amin(0) for y in range(num_classes)])
        high = torch.stack([members(codes, labels, y).amax(0) for y in range(num_classes)])
        self.mean, self.half = (low + high) / 2, self.scale * (high - low) / 2
        return self

    def draw(self, labels: torch.Tensor, noise: torch.Tensor, generator: torch.Generator | None = None):
        u = torch.rand(noise.shape, generator=generator, dtype=noise.dtype).to(noise.device) * 2 - 1
        return self.mean[labels], self.half[labels] * u

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean.cpu(), "half": self.half.cpu()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor], num_classes: int, latent_dim: int) -> Self:
        mean, half = tensors(state, ("mean", "half"))
        shapes = f"has shapes {tuple(mean.shape)}, {tuple(half.shape)}"
        expect(mean.shape == half.shape == (num_classes, latent_dim), shapes, num_classes, latent_dim)
        self.mean, self.half = mean.float(), half.float()
        return self
