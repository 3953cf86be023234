"""Image grids as PNG files (no torchvision needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, cast

import numpy as np
import torch

from catvae.core.files import atomic_write

LABEL_DPI = 100  # pixels per inch of a labelled grid: sizes below are in pixels
LABEL_PAD = 4  # pixels either side of the row names


def tile(images: torch.Tensor, columns: int, pad: int = 2) -> np.ndarray:
    """Tile N×784 images (N × side², square) into one grey-level array, ``columns`` per row, row-major, on black."""
    count = images.shape[0]
    rows = max(1, -(-count // columns))
    image_side = math.isqrt(images[0].numel() if count else images.shape[-1])
    side = image_side + pad
    canvas = np.zeros((rows * side + pad, columns * side + pad), dtype=np.float32)
    pictures = images.detach().cpu().reshape(count, image_side, image_side).numpy()
    for index, picture in enumerate(pictures):
        row, column = divmod(index, columns)
        top, left = pad + row * side, pad + column * side
        canvas[top : top + image_side, left : left + image_side] = picture
    return canvas


def save_grid(
    images: torch.Tensor, path: str | Path, columns: int, scale: int = 2, row_labels: Sequence[str] | None = None
) -> Path:
    """Write a PNG grid of N×784 images in [0, 1] (each pixel enlarged ``scale`` times).

    With ``row_labels`` (one per row of the grid, e.g. the class names) each row's name is written
    in a margin on the left; the grid's own pixels are the same as without them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    canvas = tile(images.clamp(0, 1), columns)
    canvas = np.kron(canvas, np.ones((scale, scale), dtype=np.float32))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image_format = path.suffix.lstrip(".") or "png"
    if not row_labels:
        with atomic_write(path, binary=True) as handle:
            plt.imsave(cast(BinaryIO, handle), canvas, cmap="gray", vmin=0.0, vmax=1.0, format=image_format)
        return path
    height, width = canvas.shape
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
