"""Plain ``nn.Module`` networks of the paper (Tables 1–3).

They hold no training logic, so ``catvae.generate`` can load them without Lightning.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence

import torch
from torch import nn

IMAGE_SIDE = 28
IMAGE_PIXELS = IMAGE_SIDE * IMAGE_SIDE


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Fully connected layers with softplus between them and no activation after the last."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(nn.Softplus())
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """Table 1: 784-500-500-(2·D), softplus; outputs the mean and log-variance of q(z|x)."""

    def __init__(self, latent_dim: int, hidden: Sequence[int] = (500, 500), input_dim: int = IMAGE_PIXELS):
        super().__init__()
        self.latent_dim = latent_dim
        self.net = mlp([input_dim, *hidden, 2 * latent_dim])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.net(x.flatten(1)).chunk(2, dim=1)
        return mean, logvar


class Decoder(nn.Module):
    """Table 2: D-500-500-784, softplus; returns logits (the sigmoid is applied by ``images``)."""

    def __init__(self, latent_dim: int, hidden: Sequence[int] = (500, 500), output_dim: int = IMAGE_PIXELS):
        super().__init__()
        self.latent_dim = latent_dim
        self.net = mlp([latent_dim, *hidden, output_dim])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    @torch.no_grad()
    def images(self, z: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """Decoded images (sigmoid of the logits), N×784 in [0, 1]."""
        return torch.cat([torch.sigmoid(self(chunk)) for chunk in z.split(batch_size)])


class ClassifierNet(nn.Module):
    """Table 3: conv32-conv64-maxpool-dropout(0.25)-fc128-dropout(0.5)-fc10; returns logits."""

    def __init__(self, num_classes: int = 10, dropout_conv: float = 0.25, dropout_fc: float = 0.5):
        super().__init__()
        side = (IMAGE_SIDE - 4) // 2
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=3),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout(dropout_conv),
            nn.Flatten(),
            nn.Linear(64 * side * side, 128),
            nn.ReLU(),
            nn.Dropout(dropout_fc),
            nn.Linear(128, num_classes),
        )
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Channels-last: the convolutions run about 1.4× faster that way on CPU (and on GPUs'
        # tensor cores), more so with channels-last weights (the Classifier module and
        # ``catvae.core.artifacts.load_models`` convert them). A 1-channel input needs no copy for it.
        return self.net(x.reshape(-1, 1, IMAGE_SIDE, IMAGE_SIDE).contiguous(memory_format=torch.channels_last))

    @torch.inference_mode()
    def predict(self, images: torch.Tensor, batch_size: int = 128, bf16: bool = False) -> torch.Tensor:
        """Predicted labels for N×784 images, in evaluation mode.

        With ``bf16`` a bf16 copy of the network classifies bf16 images (made per call: the
        weights are 1.2 M numbers, so ~1 ms): on a CPU with native bf16 that is 2× faster than
        autocast, which re-casts and converts around every layer. Batches of 128 keep the
        activations in cache (on this project's 2-core CPU, 10,000 images: 0.43 s at batch 128,
        0.98 s at 250; fp32 channels-last 2.2 s).
        """
        net = copy.deepcopy(self).to(torch.bfloat16) if bf16 else self
        was_training = net.training
        net.eval()
        try:
            dtype = torch.bfloat16 if bf16 else images.dtype
            return torch.cat([net(chunk.to(dtype)).argmax(dim=1) for chunk in images.split(batch_size)])
        finally:
            net.train(was_training)

    def accuracy(self, images: torch.Tensor, labels: torch.Tensor, bf16: bool = False) -> float:
        """Share of ``images`` classified as their ``labels``."""
        return float((self.predict(images, bf16=bf16) == labels.to(images.device)).float().mean())
