"""Class latent statistics: per label y, the mean μ_y and spread σ_y of the encoded training set.

They are the paper's class density (§3.5.1, eq. 3), ``diag`` among :mod:`catvae.densities.base`:
N(μ_y, diag σ_y²), drawn as z = μ_y + θ ⊙ σ_y ⊙ ε̄ (ε̄ the mean of n standard normal draws).
Config: ``conf/latent/diag.yaml`` (no fit options). Besides ``densities.pt`` they are published
on their own in ``stats.pt`` (:meth:`ClassLatentStats.save`), what the paper's generator reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Self

import torch

from catvae.core import artifact_format
from catvae.core.errors import ArgumentError
from catvae.densities.base import ClassDensity, expect, members, tensors


class ClassLatentStats(ClassDensity):
    """Diagonal Gaussian per class: ``mean`` and ``std`` are L×D, ``count`` is L (the ``diag`` density).

    It has no fit options: ``ClassLatentStats()`` is unfitted (:meth:`fit`); ``ClassLatentStats(mean,
    std, count)`` holds given statistics."""

    name = "diag"
    mean: torch.Tensor
    std: torch.Tensor
    count: torch.Tensor

    def __init__(
        self, mean: torch.Tensor | None = None, std: torch.Tensor | None = None, count: torch.Tensor | None = None
    ) -> None:
        for argument, value in (("mean", mean), ("std", std), ("count", count)):
            if value is not None and not isinstance(value, torch.Tensor):
                raise ArgumentError(argument, value, "a tensor of fitted statistics (diag has no fit options)")
        if mean is not None and std is not None and count is not None:
            self.mean, self.std, self.count = mean, std, count

    def __repr__(self) -> str:
        return f"ClassLatentStats(mean={getattr(self, 'mean', None)}, std={getattr(self, 'std', None)})"

    def fit(self, codes: torch.Tensor, labels: torch.Tensor, num_classes: int) -> Self:
        """Per-class mean and (unbiased) standard deviation of N×D codes."""
        means, stds, counts = [], [], []
        for label in range(num_classes):
            chosen = members(codes, labels, label, minimum=2)
            means.append(chosen.mean(dim=0))
            stds.append(chosen.std(dim=0))
            counts.append(len(chosen))
        self.mean, self.std, self.count = torch.stack(means), torch.stack(stds), torch.tensor(counts, device=codes.device)
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean.cpu(), "std": self.std.cpu(), "count": self.count.cpu()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor], num_classes: int, latent_dim: int) -> Self:
        mean, std, count = tensors(state, ("mean", "std", "count"))
        shapes = f"has shapes {tuple(mean.shape)}, {tuple(std.shape)}, {tuple(count.shape)}"
        ok = mean.shape == std.shape == (num_classes, latent_dim) and count.shape == (num_classes,)
        expect(ok, shapes, num_classes, latent_dim)
        self.mean, self.std, self.count = mean.float(), std.float(), count
        return self

    def draw(
        self, labels: torch.Tensor, noise: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Centre μ_y and spread σ_y ⊙ ε̄ for each label (``noise`` = ε̄, K×D); draws nothing more."""
        return self.mean[labels], self.std[labels] * noise

    def gaussian_components(self) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per class one component: weight 1, μ_y, diag σ_y²."""
        ones = torch.ones(1, dtype=self.mean.dtype, device=self.mean.device)
        return [(ones, self.mean[y, None], torch.diag(self.std[y] ** 2)[None]) for y in range(self.num_classes)]

    def save(self, path: str | Path) -> None:
        torch.save(
            artifact_format.stamp("stats", {"mean": self.mean.cpu(), "std": self.std.cpu(), "count": self.count.cpu()}), path
        )

    @classmethod
    def load(cls, path: str | Path, remake: str | None = None) -> ClassLatentStats:
        """Statistics written by :meth:`save`; a corrupt, foreign or inconsistent file is an
        :class:`~catvae.core.errors.ArtifactError` naming it and ``remake``, the command that makes it again."""
        state = artifact_format.read(path, "stats", remake)
        mean, std, count = (state.get(name) for name in ("mean", "std", "count"))
        if not (isinstance(mean, torch.Tensor) and isinstance(std, torch.Tensor) and isinstance(count, torch.Tensor)):
            raise artifact_format.broken(path, "mean, std and count are not all tensors", remake)
        if mean.dim() != 2 or min(mean.shape) < 1 or std.shape != mean.shape or count.shape != mean.shape[:1]:
            raise artifact_format.broken(
                path,
                f"shapes do not fit: mean {tuple(mean.shape)}, std {tuple(std.shape)}, "
                f"count {tuple(count.shape)} (expected L×D, L×D, L)",
                remake,
            )
        if not (mean.is_floating_point() and std.is_floating_point()):
            raise artifact_format.broken(path, "mean and std are not floating point", remake)
        if not (bool(torch.isfinite(mean).all()) and bool(torch.isfinite(std).all()) and bool((std >= 0).all())):
            raise artifact_format.broken(
                path, "mean or std hold NaN, infinite or negative values (a training that diverged?)", remake
            )
        return cls(mean.float(), std.float(), count)
