"""Plain ``nn.Module`` networks: the paper's MLPs (Tables 1–3) and a small convolutional VAE.

They hold no training logic, so ``catvae.generate`` can load them without Lightning. A VAE's pair
of networks is described by a :class:`NetworkSpec` (what ``vae.pt`` stores, so
:func:`catvae.artifacts.read_vae` rebuilds the same classes); :func:`build_networks` makes it.

Every encoder is called ``encoder(x, labels=None) -> (mean, logvar)`` and every decoder
``decoder(z, labels=None) -> logits`` / ``decoder.images(z, labels=None)``. A conditional pair
(``num_classes > 0``: the CVAE baseline, Sohn et al. 2015) concatenates the one-hot label to the
encoder's and the decoder's inputs and refuses to run without labels; unconditional ones ignore them.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from catvae.data.sources import IMAGE_PIXELS, IMAGE_SIDE

ARCHITECTURES = ("mlp", "conv")  # vae.arch


def mlp(sizes: Sequence[int], activation: type[nn.Module] = nn.Softplus) -> nn.Sequential:
    """Fully connected layers with ``activation`` between them and none after the last."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def with_labels(inputs: torch.Tensor, labels: torch.Tensor | None, num_classes: int, network: str) -> torch.Tensor:
    """``inputs`` with the one-hot ``labels`` appended (a conditional network), or as they are (``num_classes=0``)."""
    if num_classes == 0:
        return inputs
    if labels is None:
        raise ValueError(f"this {network} is conditional on the class label (a CVAE): call it with labels=<the target labels>")
    if labels.shape != inputs.shape[:1]:
        raise ValueError(f"{network}: {labels.shape[0] if labels.dim() else 0} labels for {inputs.shape[0]} inputs")
    one_hot = F.one_hot(labels.to(inputs.device).long(), num_classes).to(inputs.dtype)
    return torch.cat([inputs, one_hot], dim=1)


@dataclass(frozen=True)
class NetworkSpec:
    """What builds a VAE's encoder and decoder: ``arch`` (``mlp``: Tables 1–2; ``conv``: the
    strided-convolution pair below), ``hidden`` (the MLP's widths; for ``conv`` the fully connected
    layers between the convolutions and the code), ``channels`` and ``kernel`` (``conv`` only),
    ``num_classes`` (> 0: conditional on the one-hot label, the CVAE)."""

    arch: str
    latent_dim: int
    hidden: tuple[int, ...] = (500, 500)
    channels: tuple[int, ...] = (32, 64)
    kernel: int = 4
    num_classes: int = 0

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch={self.arch!r} is not allowed: one of {', '.join(ARCHITECTURES)}")
        if self.arch == "conv" and (not 1 <= len(self.channels) <= 2 or self.kernel not in (3, 4)):
            raise ValueError(
                f"channels={list(self.channels)}, kernel={self.kernel} is not allowed: 1 or 2 channel counts, kernel 3 or 4"
            )

    def as_dict(self) -> dict:
        """Plain fields (lists, ints) for ``vae.pt``."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class SpecNetwork(nn.Module):
    """A network built from a :class:`NetworkSpec`: its latent size and whether it takes labels."""

    spec: NetworkSpec

    @property
    def latent_dim(self) -> int:
        return self.spec.latent_dim

    @property
    def conditional(self) -> bool:
        return self.spec.num_classes > 0


class ImageDecoder(SpecNetwork):
    """A decoder of codes (and, if conditional, labels) to 784 logits; ``images`` applies the sigmoid."""

    @torch.no_grad()
    def images(self, z: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 4096) -> torch.Tensor:
        """Decoded images (sigmoid of the logits), N×784 in [0, 1]; ``labels`` (N) for a conditional decoder."""
        chunks = z.split(batch_size)
        parts = labels.split(batch_size) if labels is not None else [None] * len(chunks)
        return torch.cat([torch.sigmoid(self(chunk, part)) for chunk, part in zip(chunks, parts, strict=True)])


class ImageEncoder(SpecNetwork):
    """An encoder of images (and, if conditional, labels) to the mean and log-variance of q(z|x)."""


class Encoder(ImageEncoder):
    """Table 1: 784-500-500-(2·D), softplus; outputs the mean and log-variance of q(z|x).
    With ``num_classes`` the one-hot label is appended to the 784 pixels (CVAE)."""

    def __init__(self, latent_dim: int, hidden: Sequence[int] = (500, 500), input_dim: int = IMAGE_PIXELS, num_classes: int = 0):
        super().__init__()
        self.spec = NetworkSpec("mlp", latent_dim, tuple(hidden), num_classes=num_classes)
        self.net = mlp([input_dim + num_classes, *hidden, 2 * latent_dim])

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = with_labels(x.flatten(1), labels, self.spec.num_classes, "encoder")
        mean, logvar = self.net(inputs).chunk(2, dim=1)
        return mean, logvar


class Decoder(ImageDecoder):
    """Table 2: D-500-500-784, softplus; returns logits (the sigmoid is applied by ``images``).
    With ``num_classes`` the one-hot label is appended to the code (CVAE)."""

    def __init__(self, latent_dim: int, hidden: Sequence[int] = (500, 500), output_dim: int = IMAGE_PIXELS, num_classes: int = 0):
        super().__init__()
        self.spec = NetworkSpec("mlp", latent_dim, tuple(hidden), num_classes=num_classes)
        self.net = mlp([latent_dim + num_classes, *hidden, output_dim])

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(with_labels(z, labels, self.spec.num_classes, "decoder"))


def _conv_geometry(spec: NetworkSpec) -> tuple[int, int, int]:
    """Padding, output padding and the side of the last feature map: each stride-2 convolution
    halves the side (28 → 14 → 7) with kernel 4 and padding 1, or kernel 3, padding 1 (and an
    output padding of 1 on the way back up, so the transposed convolutions land on 28 again)."""
    side = IMAGE_SIDE // 2 ** len(spec.channels)
    return 1, (0 if spec.kernel == 4 else 1), side


class ConvEncoder(ImageEncoder):
    """Strided convolutions (ReLU) 1 → channels[0] → channels[1] with stride 2 (28 → 14 → 7), then
    fully connected layers ``hidden`` to (2·D). Channels-last: see :class:`ClassifierNet`."""

    def __init__(self, spec: NetworkSpec):
        super().__init__()
        self.spec = spec
        padding, _, side = _conv_geometry(spec)
        layers: list[nn.Module] = []
        for fan_in, fan_out in itertools.pairwise((1, *spec.channels)):
            layers += [nn.Conv2d(fan_in, fan_out, spec.kernel, stride=2, padding=padding), nn.ReLU()]
        self.conv = nn.Sequential(*layers, nn.Flatten())
        self.head = mlp([spec.channels[-1] * side * side + spec.num_classes, *spec.hidden, 2 * spec.latent_dim], nn.ReLU)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        image = x.reshape(-1, 1, IMAGE_SIDE, IMAGE_SIDE).contiguous(memory_format=torch.channels_last)
        features = with_labels(self.conv(image), labels, self.spec.num_classes, "encoder")
        mean, logvar = self.head(features).chunk(2, dim=1)
        return mean, logvar


class ConvDecoder(ImageDecoder):
    """The mirror of :class:`ConvEncoder`: fully connected layers ``hidden`` from the code to
    channels[-1]×7×7, then transposed convolutions (ReLU between) back to one 28×28 map of logits."""

    def __init__(self, spec: NetworkSpec):
        super().__init__()
        self.spec = spec
        padding, output_padding, side = _conv_geometry(spec)
        self.side = side
        self.head = mlp([spec.latent_dim + spec.num_classes, *spec.hidden, spec.channels[-1] * side * side], nn.ReLU)
        layers: list[nn.Module] = [nn.ReLU()]
        widths = (*reversed(spec.channels), 1)
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
            layers.append(
                nn.ConvTranspose2d(fan_in, fan_out, spec.kernel, stride=2, padding=padding, output_padding=output_padding)
            )
            if i < len(widths) - 2:
                layers.append(nn.ReLU())
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        features = self.head(with_labels(z, labels, self.spec.num_classes, "decoder"))
        maps = features.reshape(-1, self.spec.channels[-1], self.side, self.side)
        return self.deconv(maps.contiguous(memory_format=torch.channels_last)).flatten(1)


def build_networks(spec: NetworkSpec) -> tuple[ImageEncoder, ImageDecoder]:
    """The encoder and decoder ``spec`` describes (fresh weights)."""
    if spec.arch == "conv":
        return ConvEncoder(spec), ConvDecoder(spec)
    hidden, classes = spec.hidden, spec.num_classes
    return Encoder(spec.latent_dim, hidden, num_classes=classes), Decoder(spec.latent_dim, hidden, num_classes=classes)


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
        # ``catvae.artifacts.load_models`` convert them). A 1-channel input needs no copy for it.
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
