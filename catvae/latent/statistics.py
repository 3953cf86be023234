"""Class latent statistics: per label y, the mean μ_y and spread σ_y of the encoded training set.

This is the place later class densities (full covariance, mixtures) plug in: a density needs
``fit`` from (codes, labels) and to expose what the generators of §3.5 draw from.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch


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
                raise ValueError(f"class {label} has {len(members)} encoded training images; need at least 2")
            means.append(members.mean(dim=0))
            stds.append(members.std(dim=0))
            counts.append(len(members))
        return cls(torch.stack(means), torch.stack(stds), torch.tensor(counts, device=codes.device))

    def to(self, device: torch.device | str) -> ClassLatentStats:
        """The same statistics on ``device``."""
        return ClassLatentStats(self.mean.to(device), self.std.to(device), self.count.to(device))

    def save(self, path: str | Path) -> None:
        torch.save({"mean": self.mean.cpu(), "std": self.std.cpu(), "count": self.count.cpu()}, path)

    @classmethod
    def load(cls, path: str | Path) -> ClassLatentStats:
        state = torch.load(path, map_location="cpu", weights_only=True)
        return cls(state["mean"], state["std"], state["count"])
