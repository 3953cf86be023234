"""Plain ``nn.Module`` networks: the paper's MLPs (Tables 1–3) and a small convolutional VAE.

They hold no training logic, so ``catvae.generate`` can load them without Lightning. A VAE's pair
of networks is named by a Hydra ``_target_`` node (``vae.net``: ``conf/vae/net/*.yaml``) whose
target returns ``(encoder, decoder)`` given ``latent_dim``, ``image_shape`` (channels, height,
width: the data module reports it) and ``num_classes``; :func:`build_networks` makes it and keeps
the resolved node on both networks (``network.node``), which ``vae.pt`` stores, so
:func:`catvae.artifacts.read_vae` rebuilds the same classes. Adding a network is one module with
such a function (networks subclassing :class:`ImageEncoder` / :class:`ImageDecoder`) and one YAML.

Every encoder is called ``encoder(x, labels=None) -> (mean, logvar)`` and every decoder
``decoder(z, labels=None) -> logits`` / ``decoder.images(z, labels=None)``, on flat N×(C·H·W)
images. A conditional pair (``num_classes > 0``: the CVAE baseline, Sohn et al. 2015) concatenates
the one-hot label to the encoder's and the decoder's inputs and refuses to run without labels;
unconditional ones ignore them. A constructor refuses an argument it cannot build with a
:class:`~catvae.core.errors.ConfigError` naming the argument (validation prefixes ``vae.net.``).
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from catvae.core.errors import ConfigError
from catvae.core.images import ImageShape, image_shape_of
from catvae.core.targets import instantiate


def check_widths(key: str, widths: Sequence[Any]) -> tuple[int, ...]:
    """Layer widths as a tuple; each must be an integer >= 1 (refused as ``key.i``)."""
    for index, width in enumerate(widths):
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ConfigError(f"{key}.{index}", width, "an integer >= 1")
    return tuple(widths)


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


MLP_TARGET = "catvae.models.networks.mlp_networks"
CONV_TARGET = "catvae.models.networks.conv_networks"


class ImageNetwork(nn.Module):
    """A VAE network for images of ``image_shape`` (channels, height, width): its latent size,
    whether it takes labels (``num_classes > 0``), and ``node``, the ``_target_`` node (plain dict)
    that rebuilds it and its partner (:func:`build_networks`, ``vae.pt``)."""

    def __init__(self, latent_dim: int, image_shape: Sequence[int], num_classes: int = 0):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.image_shape: ImageShape = image_shape_of(image_shape)
        self.num_classes = int(num_classes)
        self.node: dict[str, Any] = {}

    @property
    def pixels(self) -> int:
        """Numbers per flat image: C·H·W."""
        return math.prod(self.image_shape)

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0


class ImageDecoder(ImageNetwork):
    """A decoder of codes (and, if conditional, labels) to C·H·W logits; ``images`` applies the sigmoid."""

    @torch.no_grad()
    def images(self, z: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 4096) -> torch.Tensor:
        """Decoded images (sigmoid of the logits), N×(C·H·W) in [0, 1]; ``labels`` (N) for a conditional decoder."""
        chunks = z.split(batch_size)
        parts = labels.split(batch_size) if labels is not None else [None] * len(chunks)
        return torch.cat([torch.sigmoid(self(chunk, part)) for chunk, part in zip(chunks, parts, strict=True)])


class ImageEncoder(ImageNetwork):
    """An encoder of images (and, if conditional, labels) to the mean and log-variance of q(z|x)."""


def _plain(value: Any) -> Any:
    """Tuples as lists, so a node compares equal to itself read back from ``vae.pt``."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


class Encoder(ImageEncoder):
    """Table 1: 784-500-500-(2·D) on MNIST (C·H·W inputs), softplus; outputs the mean and log-variance
    of q(z|x). With ``num_classes`` the one-hot label is appended to the pixels (CVAE)."""

    def __init__(self, latent_dim: int, hidden: Sequence[int] = (500, 500), *, image_shape: Sequence[int], num_classes: int = 0):
        super().__init__(latent_dim, image_shape, num_classes)
        self.hidden = check_widths("hidden", hidden)
        self.node = mlp_node(self.latent_dim, self.image_shape, self.hidden, self.num_classes)
        self.net = mlp([self.pixels + self.num_classes, *self.hidden, 2 * self.latent_dim])

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = with_labels(x.flatten(1), labels, self.num_classes, "encoder")
        mean, logvar = self.net(inputs).chunk(2, dim=1)
        return mean, logvar


class Decoder(ImageDecoder):
    """Table 2: D-500-500-784 on MNIST (C·H·W outputs), softplus; returns logits (the sigmoid is
    applied by ``images``). With ``num_classes`` the one-hot label is appended to the code (CVAE)."""

    def __init__(self, latent_dim: int, hidden: Sequence[int] = (500, 500), *, image_shape: Sequence[int], num_classes: int = 0):
        super().__init__(latent_dim, image_shape, num_classes)
        self.hidden = check_widths("hidden", hidden)
        self.node = mlp_node(self.latent_dim, self.image_shape, self.hidden, self.num_classes)
        self.net = mlp([self.latent_dim + self.num_classes, *self.hidden, self.pixels])

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(with_labels(z, labels, self.num_classes, "decoder"))


def mlp_node(latent_dim: int, image_shape: Sequence[int], hidden: Sequence[int], num_classes: int) -> dict[str, Any]:
    """The ``_target_`` node of an MLP pair (``conf/vae/net/mlp.yaml`` resolved)."""
    return {
        "_target_": MLP_TARGET,
        "latent_dim": latent_dim,
        "image_shape": _plain(image_shape),
        "hidden": _plain(hidden),
        "num_classes": num_classes,
    }


def mlp_networks(
    latent_dim: int, image_shape: Sequence[int], hidden: Sequence[int] = (500, 500), num_classes: int = 0
) -> tuple[Encoder, Decoder]:
    """``vae/net=mlp``: the paper's encoder and decoder (Tables 1–2) with fully connected ``hidden`` widths."""
    return (
        Encoder(latent_dim, hidden, image_shape=image_shape, num_classes=num_classes),
        Decoder(latent_dim, hidden, image_shape=image_shape, num_classes=num_classes),
    )


class ConvGeometry:
    """The shared shape of a conv pair: each stride-2 convolution halves the side (28 → 14 → 7)
    with kernel 4 and padding 1, or kernel 3, padding 1 (and an output padding of 1 on the way back
    up, so the transposed convolutions land on the image's size again)."""

    def __init__(self, image_shape: ImageShape, channels: Sequence[Any], kernel: Any):
        image_channels, height, width = image_shape
        channels = list(channels)
        steps = [f"{height // 2**i}" if height == width else f"{height // 2**i}×{width // 2**i}" for i in range(3)]
        if not 1 <= len(channels) <= 2:
            allowed = f"a list of 1 or 2 channel counts (each stride-2 convolution halves the side: {' → '.join(steps)})"
            raise ConfigError("channels", channels, allowed)
        self.channels = check_widths("channels", channels)
        if kernel not in (3, 4) or isinstance(kernel, bool):
            raise ConfigError("kernel", kernel, "3 or 4 (stride-2 convolutions with padding 1)")
        scale = 2 ** len(self.channels)
        if height % scale or width % scale:
            raise ConfigError(
                "channels",
                channels,
                f"at most as many stride-2 convolutions as halve {height}×{width} exactly "
                f"(the image's sides must divide by {scale})",
            )
        self.kernel, self.image_channels = int(kernel), image_channels
        self.padding, self.output_padding = 1, (0 if kernel == 4 else 1)
        self.height, self.width = height // scale, width // scale  # of the last feature map

    @property
    def features(self) -> int:
        return self.channels[-1] * self.height * self.width


def conv_node(
    latent_dim: int, image_shape: Sequence[int], hidden: Sequence[int], channels: Sequence[int], kernel: int, num_classes: int
) -> dict[str, Any]:
    """The ``_target_`` node of a conv pair (``conf/vae/net/conv.yaml`` resolved)."""
    return {
        "_target_": CONV_TARGET,
        "latent_dim": latent_dim,
        "image_shape": _plain(image_shape),
        "hidden": _plain(hidden),
        "channels": _plain(channels),
        "kernel": kernel,
        "num_classes": num_classes,
    }


class ConvEncoder(ImageEncoder):
    """Strided convolutions (ReLU) C → channels[0] → channels[1] with stride 2 (28 → 14 → 7), then
    fully connected layers ``hidden`` to (2·D). Channels-last: see :class:`ClassifierNet`."""

    def __init__(
        self,
        latent_dim: int,
        image_shape: Sequence[int],
        hidden: Sequence[int] = (),
        channels: Sequence[int] = (32, 64),
        kernel: int = 4,
        num_classes: int = 0,
    ):
        super().__init__(latent_dim, image_shape, num_classes)
        geometry = ConvGeometry(self.image_shape, channels, kernel)
        self.hidden = check_widths("hidden", hidden)
        self.node = conv_node(self.latent_dim, self.image_shape, self.hidden, geometry.channels, geometry.kernel, num_classes)
        layers: list[nn.Module] = []
        for fan_in, fan_out in itertools.pairwise((geometry.image_channels, *geometry.channels)):
            layers += [nn.Conv2d(fan_in, fan_out, geometry.kernel, stride=2, padding=geometry.padding), nn.ReLU()]
        self.conv = nn.Sequential(*layers, nn.Flatten())
        self.head = mlp([geometry.features + self.num_classes, *self.hidden, 2 * self.latent_dim], nn.ReLU)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        image = x.reshape(-1, *self.image_shape).contiguous(memory_format=torch.channels_last)
        features = with_labels(self.conv(image), labels, self.num_classes, "encoder")
        mean, logvar = self.head(features).chunk(2, dim=1)
        return mean, logvar


class ConvDecoder(ImageDecoder):
    """The mirror of :class:`ConvEncoder`: fully connected layers ``hidden`` from the code to
    channels[-1]×7×7 (on MNIST), then transposed convolutions (ReLU between) back to C maps of logits."""

    def __init__(
        self,
        latent_dim: int,
        image_shape: Sequence[int],
        hidden: Sequence[int] = (),
        channels: Sequence[int] = (32, 64),
        kernel: int = 4,
        num_classes: int = 0,
    ):
        super().__init__(latent_dim, image_shape, num_classes)
        geometry = ConvGeometry(self.image_shape, channels, kernel)
        self.hidden = check_widths("hidden", hidden)
        self.node = conv_node(self.latent_dim, self.image_shape, self.hidden, geometry.channels, geometry.kernel, num_classes)
        self.maps = (geometry.channels[-1], geometry.height, geometry.width)
        self.head = mlp([self.latent_dim + self.num_classes, *self.hidden, geometry.features], nn.ReLU)
        layers: list[nn.Module] = [nn.ReLU()]
        widths = (*reversed(geometry.channels), geometry.image_channels)
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
            layers.append(
                nn.ConvTranspose2d(
                    fan_in, fan_out, geometry.kernel, stride=2, padding=geometry.padding, output_padding=geometry.output_padding
                )
            )
            if i < len(widths) - 2:
                layers.append(nn.ReLU())
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        features = self.head(with_labels(z, labels, self.num_classes, "decoder"))
        maps = features.reshape(-1, *self.maps)
        return self.deconv(maps.contiguous(memory_format=torch.channels_last)).flatten(1)


def conv_networks(
    latent_dim: int,
    image_shape: Sequence[int],
    hidden: Sequence[int] = (),
    channels: Sequence[int] = (32, 64),
    kernel: int = 4,
    num_classes: int = 0,
) -> tuple[ConvEncoder, ConvDecoder]:
    """``vae/net=conv``: the strided-convolution pair (1 or 2 convolutions of ``channels``, ``kernel``
    3 or 4, then fully connected layers ``hidden``)."""
    return (
        ConvEncoder(latent_dim, image_shape, hidden, channels, kernel, num_classes),
        ConvDecoder(latent_dim, image_shape, hidden, channels, kernel, num_classes),
    )


def build_networks(node: Mapping[str, Any], **arguments: Any) -> tuple[ImageEncoder, ImageDecoder]:
    """The encoder and decoder (fresh weights) a ``_target_`` node names, with ``arguments``
    (``latent_dim``, ``image_shape``, ``num_classes``) added; both keep the resolved node (``.node``).

    The target must be trusted (:mod:`catvae.core.targets`) and return an (encoder, decoder) pair
    of :class:`ImageEncoder` and :class:`ImageDecoder`: otherwise a ``ConfigError`` about ``_target_``."""
    resolved = {str(key): _plain(value) for key, value in {**node, **arguments}.items()}
    target = resolved.get("_target_")
    try:
        built = instantiate(resolved, _convert_="all")
    except ConfigError:
        raise
    except Exception as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, ConfigError) else None
        if cause is not None:
            raise cause from None
        raise ConfigError("_target_", target, f"a trusted function returning (encoder, decoder) ({exc})") from None
    if not (
        isinstance(built, (tuple, list))
        and len(built) == 2
        and isinstance(built[0], ImageEncoder)
        and isinstance(built[1], ImageDecoder)
    ):
        raise ConfigError("_target_", target, "a function returning (ImageEncoder, ImageDecoder) of catvae.models.networks")
    encoder, decoder = built
    encoder.node = decoder.node = resolved
    return encoder, decoder


class ClassifierNet(nn.Module):
    """Table 3: conv32-conv64-maxpool-dropout(0.25)-fc128-dropout(0.5)-fc10; returns logits.

    The layer sizes follow ``image_shape`` (channels, height, width): C input maps, and the fc128
    layer takes 64·((H−4)/2)·((W−4)/2) features (64·12·12 on MNIST, as in the paper)."""

    def __init__(self, num_classes: int = 10, dropout_conv: float = 0.25, dropout_fc: float = 0.5, *, image_shape: Sequence[int]):
        super().__init__()
        self.image_shape = image_shape_of(image_shape)
        channels, height, width = self.image_shape
        self.net = nn.Sequential(
            nn.Conv2d(channels, 32, kernel_size=3),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout(dropout_conv),
            nn.Flatten(),
            nn.Linear(64 * ((height - 4) // 2) * ((width - 4) // 2), 128),
            nn.ReLU(),
            nn.Dropout(dropout_fc),
            nn.Linear(128, num_classes),
        )
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Channels-last: the convolutions run about 1.4× faster that way on CPU (and on GPUs'
        # tensor cores), more so with channels-last weights (the Classifier module and
        # ``catvae.artifacts.load_models`` convert them). A 1-channel input needs no copy for it.
        return self.net(x.reshape(-1, *self.image_shape).contiguous(memory_format=torch.channels_last))

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
