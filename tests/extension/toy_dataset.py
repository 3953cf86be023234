"""A toy dataset added from outside catvae (the extension test): 3×32×32 colour images made in memory.

Class y (0..9) is an 8×8 square of colour ``COLOURS[y]`` at ``CORNERS[y]`` on dim noise (each pair differs), so the
classes are easy for the judge and a VAE alike. ``data=toy_rgb`` (``conf/data/toy_rgb.yaml``)
names :func:`load_toy_rgb` as the source of catvae's own ``ImageDataModule``.
"""

from __future__ import annotations

import functools

import torch

from catvae.data.sources import Splits

IMAGE_SHAPE = (3, 32, 32)
NUM_CLASSES = 10
SQUARE = 8
CORNERS = [*((row, column) for row in (2, 12, 22) for column in (2, 12, 22)), (12, 2)]  # 9 on a grid, 1 doubled
COLOURS = [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 1.0, 0.0), (0.0, 1.0, 1.0)]
COLOURS = [*COLOURS, (1.0, 0.0, 1.0), (1.0, 1.0, 1.0), (1.0, 0.5, 0.0), (0.5, 0.0, 1.0), (0.0, 0.5, 0.5)]


def make_images(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """N×3×32×32 images in [0, 1] of ``labels``: noise in [0, 0.2] with the class's coloured square."""
    images = torch.rand(len(labels), *IMAGE_SHAPE, generator=generator) * 0.2
    for index, label in enumerate(labels.tolist()):
        row, column = CORNERS[label]
        colour = torch.tensor(COLOURS[label]).view(3, 1, 1)
        images[index, :, row : row + SQUARE, column : column + SQUARE] = colour
    return images


@functools.lru_cache(maxsize=1)
def load_toy_rgb(train: int = 1500, test: int = 400, seed: int = 0) -> Splits:
    """``train`` training and ``test`` test images, every class equally often, reproducible from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    train_labels = torch.arange(train) % NUM_CLASSES
    test_labels = torch.arange(test) % NUM_CLASSES
    return Splits(make_images(train_labels, generator), train_labels, make_images(test_labels, generator), test_labels)
