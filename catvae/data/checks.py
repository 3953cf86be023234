"""Checks on a dataset before any training: what a source returned, and what the split leaves.

A source (MNIST, an IDX folder, a user's own callable) may hand back anything; the networks take
28×28 = 784 grey levels in [0, 1] and labels 0..L−1, and the class statistics need σ_y, which
needs at least two training images of every class. Checking here, once, turns what would be a
shape error in a matmul, NaN statistics or an IndexError in the classifier's loss into a
:class:`~catvae.core.errors.DataError` that names the dataset and what is wrong with it.
"""

from __future__ import annotations

import math
from typing import TypeGuard

import torch

from catvae.core.errors import DataError
from catvae.data.sources import IMAGE_PIXELS, IMAGE_SIDE

VAL_SIZE_ALLOWED = "a fraction in [0, 1) of the training images, or a whole number of images >= 0"


def _shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(str(d) for d in shape)


def _value_counts(values: torch.Tensor, limit: int = 5) -> str:
    """``10 (×3), 255 (×1)``: the distinct values with their counts, the first ``limit`` of them."""
    distinct, counts = torch.unique(values, return_counts=True)
    shown = ", ".join(f"{v} (×{c})" for v, c in zip(distinct[:limit].tolist(), counts[:limit].tolist()))
    return shown + (f", … ({len(distinct) - limit} more values)" if len(distinct) > limit else "")


def check_split(
    images: torch.Tensor,
    labels: torch.Tensor,
    split: str,
    dataset: str,
    num_classes: int,
    image_shape: tuple[int, int] | None = None,
    limit: str = "",
) -> None:
    """Refuse a ``split`` ("training" or "test") that the networks cannot take.

    ``image_shape`` is the source's rows × cols when it knows them (an IDX header does), so that a
    32×32 dataset is named as such rather than as 1024 pixels; ``limit`` (``data.limit_train=0``)
    is the setting that emptied the split, if any.
    """
    where = f"{dataset}: {split}"
    if images.dim() != 2 or images.shape[1] != IMAGE_PIXELS:
        if images.dim() == 2 and image_shape is not None and math.prod(image_shape) == images.shape[1]:
            got = f"{_shape_text(image_shape)} = {images.shape[1]} pixels"
        elif images.dim() == 2:
            got = f"{images.shape[1]} pixels"
        else:
            got = f"a tensor of shape {_shape_text(tuple(images.shape))}"
        raise DataError(
            f"{where} images are {got}; the networks take {IMAGE_SIDE}×{IMAGE_SIDE} = {IMAGE_PIXELS} "
            f"grey levels per image (a source returns N×{IMAGE_PIXELS} tensors)"
        )
    if len(images) == 0:
        raise DataError(f"{where} set is empty" + (f" after {limit}" if limit else ""))
    if labels.dim() != 1 or len(labels) != len(images):
        raise DataError(
            f"{where} labels have shape {_shape_text(tuple(labels.shape))}; expected one label for each "
            f"of the {len(images)} images"
        )
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise DataError(f"{where} labels are {labels.dtype}; expected integers 0..{num_classes - 1}")
    outside = labels[(labels < 0) | (labels >= num_classes)]
    if len(outside):
        raise DataError(
            f"{where} labels must be 0..{num_classes - 1} (data.num_classes={num_classes}); "
            f"{len(outside)} of {len(labels)} are not: {_value_counts(outside)}"
        )
    if not images.dtype.is_floating_point:
        raise DataError(
            f"{where} images are {images.dtype}; expected floating-point grey levels in [0, 1] (divide 8-bit pixels by 255)"
        )
    # One pass (10 ms for MNIST's 47 M pixels; isfinite().all() takes 230 ms): min and max
    # propagate NaN, and ±inf shows in them, so non-finite pixels are only counted when present.
    low, high = (float(v) for v in torch.aminmax(images))
    if not (math.isfinite(low) and math.isfinite(high)):
        bad = int((~torch.isfinite(images)).sum())
        raise DataError(f"{where} images hold {bad} non-finite pixel values (NaN or ±inf); expected grey levels in [0, 1]")
    if low < 0.0 or high > 1.0:
        hint = " (8-bit pixels need dividing by 255)" if high > 1.0 and high <= 255.0 else ""
        raise DataError(f"{where} pixel values range over [{low:g}, {high:g}]; expected grey levels in [0, 1]{hint}")


def val_size_allowed(val_size: object) -> TypeGuard[int | float]:
    """A fraction in [0, 1) (a float) or a count >= 0 (an int); the number of images decides the rest."""
    if isinstance(val_size, bool) or not isinstance(val_size, (int, float)):
        return False
    return 0.0 <= val_size < 1.0 if isinstance(val_size, float) else val_size >= 0  # NaN is refused too


def validation_count(val_size: object, num_train: int, dataset: str = "the dataset") -> int:
    """How many of ``num_train`` images ``val_size`` holds out: a float is a fraction (rounded to
    the nearest image), an int a count, as in scikit-learn's ``train_test_split``.

    A value of the wrong kind is a ``ValueError`` about this argument (the entry point's validation
    names the config key before any data loads); one that leaves no image to train on is a
    ``DataError`` about ``dataset``, since only the data can tell.
    """
    if not val_size_allowed(val_size):
        raise ValueError(f"val_size={val_size!r} is not allowed: {VAL_SIZE_ALLOWED}")
    # round, not sklearn's ceil: 1/12 · 60,000 must give MNIST's 5,000 whatever the last bit of 1/12.
    count = round(val_size * num_train) if isinstance(val_size, float) else int(val_size)
    if count >= num_train:
        raise DataError(
            f"{dataset}: data.val_size={val_size!r} holds out {count} of its {num_train} training images, "
            "leaving none to train on; lower data.val_size"
        )
    return count


def check_class_counts(
    train_labels: torch.Tensor, all_labels: torch.Tensor, num_classes: int, dataset: str, val_count: int, val_size: object
) -> None:
    """Every class keeps at least two training images after the validation split (σ_y needs two)."""
    kept = torch.bincount(train_labels, minlength=num_classes).tolist()
    rare = [label for label, count in enumerate(kept) if count < 2]
    if not rare:
        return
    before = torch.bincount(all_labels, minlength=num_classes).tolist()

    def describe(label: int) -> str:
        have = {0: "none", 1: "1 image"}[kept[label]]
        lost = (
            f" ({before[label] - kept[label]} of its {before[label]} went to validation)" if before[label] > kept[label] else ""
        )
        return f"class {label} has {have}{lost}"

    listed = "; ".join(describe(label) for label in rare[:10]) + (f"; and {len(rare) - 10} more" if len(rare) > 10 else "")
    hints = []
    if val_count:
        hints.append(f"lower data.val_size (now {val_size!r}: {val_count} image{'s' * (val_count != 1)} held out)")
    absent = [label for label in range(num_classes) if before[label] == 0]
    if absent and absent == list(range(num_classes - len(absent), num_classes)):
        hints.append(f"set data.num_classes={num_classes - len(absent)} if the dataset has only those classes")
    hints.append("use a dataset with more images of these classes")
    raise DataError(
        f"{dataset}: the class statistics need at least 2 training images of every class, but {listed}. "
        f"Fix: {', or '.join(hints)}"
    )
