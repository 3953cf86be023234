"""Image grids as PNG files (no torchvision needed)."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, cast

import numpy as np
import torch

from catvae.core.files import atomic_write
from catvae.models.networks import IMAGE_SIDE


def tile(images: torch.Tensor, columns: int, pad: int = 2) -> np.ndarray:
    """Tile N×784 images into one grey-level array, ``columns`` per row, row-major, on black."""
    count = images.shape[0]
    rows = max(1, -(-count // columns))
    side = IMAGE_SIDE + pad
    canvas = np.zeros((rows * side + pad, columns * side + pad), dtype=np.float32)
    pictures = images.detach().cpu().reshape(count, IMAGE_SIDE, IMAGE_SIDE).numpy()
    for index, picture in enumerate(pictures):
        row, column = divmod(index, columns)
        top, left = pad + row * side, pad + column * side
        canvas[top : top + IMAGE_SIDE, left : left + IMAGE_SIDE] = picture
    return canvas


def save_grid(images: torch.Tensor, path: str | Path, columns: int, scale: int = 2) -> Path:
    """Write a PNG grid of N×784 images in [0, 1] (each pixel enlarged ``scale`` times)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    canvas = tile(images.clamp(0, 1), columns)
    canvas = np.kron(canvas, np.ones((scale, scale), dtype=np.float32))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, binary=True) as handle:
        plt.imsave(cast(BinaryIO, handle), canvas, cmap="gray", vmin=0.0, vmax=1.0, format=path.suffix.lstrip(".") or "png")
    return path
