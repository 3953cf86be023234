"""§3.5 Generators: draw latent codes of a chosen class from the class statistics.

Simple (eq. 3): z_y = (1/n) Σ_i z_i with z_i ~ N(μ_y, θ·σ_y) (θ scales the standard deviation).
The mean of n such draws is distributed as N(μ_y, θ·σ_y/√n), so θ_eff = θ/√n is what sets spread.
"""
from __future__ import annotations

import math

import torch

from catvae.config import ConfigError
from catvae.networks import Decoder
from catvae.statistics import ClassLatentStats


class Simple:
    """Eq. 3 with a scalar θ ≥ 0 and n ≥ 1 draws averaged."""

    name = "simple"

    def __init__(self, theta: float = 0.4, n: int = 2):
        if isinstance(theta, bool) or not isinstance(theta, (int, float)) or not math.isfinite(theta) or theta < 0:
            raise ConfigError("generator.theta", theta, "a number >= 0")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError("generator.n", n, "an integer >= 1")
        self.theta = float(theta)
        self.n = n

    @property
    def theta_eff(self) -> float:
        """Standard-deviation multiplier of the averaged draw: θ/√n."""
        return self.theta / math.sqrt(self.n)

    def scale(self, stats: ClassLatentStats) -> torch.Tensor:
        """θ broadcast to the L×D shape of the statistics."""
        return torch.full_like(stats.std, self.theta)

    def sample(self, stats: ClassLatentStats, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One latent code per entry of ``labels`` (K), K×D."""
        mean = stats.mean[labels]
        std = (self.scale(stats) * stats.std)[labels]
        draws = torch.randn((self.n, *mean.shape), generator=generator, dtype=mean.dtype)
        return (mean + std * draws).mean(dim=0)

    def params(self) -> dict:
        """The generator's parameters as logged and stored in summaries."""
        return {"name": self.name, "theta": self.theta, "n": self.n, "theta_eff": self.theta_eff}


def target_labels(labels: list[int] | int, per_label: int) -> torch.Tensor:
    """``per_label`` copies of each label (all ``labels`` if an int count of classes), grouped: 0,0,…,1,1,…"""
    chosen = torch.arange(labels) if isinstance(labels, int) else torch.tensor(labels, dtype=torch.long)
    return chosen.repeat_interleave(per_label)


def generate_images(generator: Simple, stats: ClassLatentStats, decoder: Decoder, labels: torch.Tensor,
                    seed: int) -> torch.Tensor:
    """Decoded images (K×784) for the K target ``labels``, reproducible from ``seed``."""
    codes = generator.sample(stats, labels, torch.Generator().manual_seed(seed))
    return decoder.images(codes)
