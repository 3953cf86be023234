"""A toy VAE network pair added from outside catvae (the extension test): one linear layer each way.

``vae/net=toy`` (``conf/vae/net/toy.yaml``) names :func:`linear_networks`; catvae gives it
``latent_dim``, the data's ``image_shape`` and ``num_classes`` like its own networks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from catvae.models.networks import ImageDecoder, ImageEncoder


class LinearEncoder(ImageEncoder):
    """x (C·H·W) → (mean, log-variance) by one linear map."""

    def __init__(self, latent_dim: int, image_shape: Sequence[int], num_classes: int = 0):
        super().__init__(latent_dim, image_shape, num_classes)
        self.linear = nn.Linear(math.prod(self.image_shape), 2 * latent_dim)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.linear(x.flatten(1)).chunk(2, dim=1)
        return mean, logvar


class LinearDecoder(ImageDecoder):
    """z → C·H·W logits by one linear map."""

    def __init__(self, latent_dim: int, image_shape: Sequence[int], num_classes: int = 0):
        super().__init__(latent_dim, image_shape, num_classes)
        self.linear = nn.Linear(latent_dim, math.prod(self.image_shape))

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.linear(z)


def linear_networks(latent_dim: int, image_shape: Sequence[int], num_classes: int = 0) -> tuple[LinearEncoder, LinearDecoder]:
    """The toy pair (unconditional: ``num_classes`` is accepted and ignored)."""
    return LinearEncoder(latent_dim, image_shape), LinearDecoder(latent_dim, image_shape)
