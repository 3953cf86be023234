"""Class latent statistics: per label y, the mean μ_y and spread σ_y of the encoded training set.

This is the place later class densities (full covariance, mixtures) plug in: a density needs
``fit`` from (codes, labels) and to expose what the generators of §3.5 draw from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from catvae.core import artifact_format
from catvae.core.errors import DataError


@dataclass
class ClassLatentStats:
    """Diagonal Gaussian per class: ``mean`` and ``std`` are L×D, ``count`` is L."""

    mean: torch.Tensor
    std: torch.Tensor
    count: torch.Tensor

    @property
    def num_classes(self) -> int:
        return self.mean.shape[0]

    @property
    def latent_dim(self) -> int:
        return self.mean.shape[1]

    @classmethod
    def fit(cls, codes: torch.Tensor, labels: torch.Tensor, num_classes: int) -> ClassLatentStats:
        """Per-class mean and (unbiased) standard deviation of N×D codes."""
        means, stds, counts = [], [], []
        for label in range(num_classes):
            members = codes[labels == label]
            if len(members) < 2:
                raise DataError(f"class {label} has {len(members)} encoded training images; need at least 2")
            means.append(members.mean(dim=0))
            stds.append(members.std(dim=0))
            counts.append(len(members))
        return cls(torch.stack(means), torch.stack(stds), torch.tensor(counts, device=codes.device))

    def to(self, device: torch.device | str) -> ClassLatentStats:
        """The same statistics on ``device``."""
        return ClassLatentStats(self.mean.to(device), self.std.to(device), self.count.to(device))

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
