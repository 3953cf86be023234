"""Image grids as PNG files (no torchvision needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, cast

import numpy as np
import torch

from catvae.core.errors import ConfigError
from catvae.core.files import atomic_write

ImageShape = tuple[int, int, int]  # (channels, height, width), as the data module reports it


def image_shape_of(shape: Sequence[int]) -> ImageShape:
    """``shape`` as (channels, height, width): a (height, width) pair is one channel."""
    dims = tuple(int(d) for d in shape)
    if len(dims) == 2:
        dims = (1, *dims)
    if len(dims) != 3 or min(dims) < 1:
        raise ConfigError("image_shape", list(shape), "[channels, height, width] of positive integers")
    return dims[0], dims[1], dims[2]


LABEL_DPI = 100  # pixels per inch of a labelled grid: sizes below are in pixels
LABEL_PAD = 4  # pixels either side of the row names


def tile(images: torch.Tensor, columns: int, image_shape: Sequence[int], pad: int = 2) -> np.ndarray:
    """Tile N flat images of ``image_shape`` (C×H×W) into one array, ``columns`` per row, row-major,
    on black: H×W grey levels for one channel, H×W×C colours for three."""
    channels, height, width = image_shape_of(image_shape)
    count = images.shape[0]
    rows = max(1, -(-count // columns))
    canvas = np.zeros((rows * (height + pad) + pad, columns * (width + pad) + pad, channels), dtype=np.float32)
    pictures = images.detach().cpu().reshape(count, channels, height, width).permute(0, 2, 3, 1).numpy()
    for index, picture in enumerate(pictures):
        row, column = divmod(index, columns)
        top, left = pad + row * (height + pad), pad + column * (width + pad)
        canvas[top : top + height, left : left + width] = picture
    return canvas[..., 0] if channels == 1 else canvas


def save_grid(
    images: torch.Tensor,
    path: str | Path,
    columns: int,
    image_shape: Sequence[int],
    scale: int = 2,
    row_labels: Sequence[str] | None = None,
) -> Path:
    """Write a PNG grid of N flat images of ``image_shape`` (C×H×W) in [0, 1] (each pixel enlarged
    ``scale`` times); grey levels for one channel, colours for three.

    With ``row_labels`` (one per row of the grid, e.g. the class names) each row's name is written
    in a margin on the left; the grid's own pixels are the same as without them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    canvas = tile(images.clamp(0, 1), columns, image_shape)
    canvas = canvas.repeat(scale, axis=0).repeat(scale, axis=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image_format = path.suffix.lstrip(".") or "png"
    if not row_labels:
        with atomic_write(path, binary=True) as handle:
            plt.imsave(cast(BinaryIO, handle), canvas, cmap="gray", vmin=0.0, vmax=1.0, format=image_format)
        return path
    height, width = canvas.shape[:2]
    row_height = height / len(row_labels)
    figure = plt.figure(figsize=(width / LABEL_DPI, height / LABEL_DPI), dpi=LABEL_DPI, facecolor="black")
    texts = [
        figure.text(0, 1 - (row + 0.5) * row_height / height, name, color="white", va="center", fontsize=4 * scale + 1)
        for row, name in enumerate(row_labels)
    ]
    # The margin is the widest name as the renderer draws it (fonts differ between machines).
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    margin = 2 * LABEL_PAD + max(int(np.ceil(text.get_window_extent(renderer).width)) for text in texts)
    figure.set_size_inches((width + margin) / LABEL_DPI, height / LABEL_DPI)
    for text in texts:
        text.set_x(LABEL_PAD / (width + margin))
    figure.figimage(canvas, xo=margin, yo=0, cmap="gray", vmin=0.0, vmax=1.0, origin="upper")
    with atomic_write(path, binary=True) as handle:
        figure.savefig(cast(BinaryIO, handle), dpi=LABEL_DPI, format=image_format, facecolor="black")
    plt.close(figure)
    return path


MAX_GRID_COLUMNS = 16  # samples of each label shown in a one-row-per-label grid


def save_sample_grid(
    images: torch.Tensor, path: str | Path, per_label: int, image_shape: Sequence[int], row_labels: Sequence[str] | None = None
) -> Path:
    """The PNG of generated samples (``per_label`` consecutive images per label): with ``row_labels``
    one row per label of at most :data:`MAX_GRID_COLUMNS` of its samples, named; else a square grid."""
    if row_labels is None:
        return save_grid(images, path, columns=max(1, math.ceil(math.sqrt(len(images)))), image_shape=image_shape)
    columns = min(per_label, MAX_GRID_COLUMNS)
    shown = images.view(-1, per_label, images.shape[1])[:, :columns].reshape(-1, images.shape[1])
    return save_grid(shown, path, columns=columns, image_shape=image_shape, row_labels=row_labels)
