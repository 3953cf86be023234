"""Where image datasets come from: each source returns the same four tensors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

# The images every source hands over and the networks take: 28×28 grey levels, flattened.
IMAGE_SIDE = 28
IMAGE_PIXELS = IMAGE_SIDE * IMAGE_SIDE


class Splits(NamedTuple):
    """A dataset: images are float32 in [0, 1], labels int64.

    Images are N×C×H×W, N×H×W (one channel) or flat N×(C·H·W) with ``image_shape`` saying the
    shape: (channels, height, width), or (height, width) of one channel, as an IDX header gives it.
    Flat images without a shape are taken as square grey-level images (N×784: 1×28×28). The data
    module reports the shape (``ImageDataModule.image_shape``); networks, grids and metrics follow it.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    image_shape: tuple[int, ...] | None = None


def class_label_names(names: Sequence[str] | None, num_classes: int) -> list[str]:
    """How plots, grids and ``generate label=NAME`` call each class: ``names`` (``data.class_names``,
    one per class, checked by :func:`catvae.config.validate.check_data`), or the label numbers."""
    return [str(name) for name in names] if names is not None else [str(label) for label in range(num_classes)]
