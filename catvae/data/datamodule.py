"""LightningDataModules over in-memory tensors that live on the training device.

The whole dataset (MNIST: 60,000 × 784 floats, 188 MB) is moved to the Trainer's device once,
and each step's batch is a slice of it by index: no DataLoader, no per-sample ``__getitem__``,
no collation and no host→device copy per step. On a GPU that is what keeps the device busy; on
a CPU it removes the DataLoader's per-step Python cost.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import pytorch_lightning as pl
import torch

from catvae.core.errors import DataError
from catvae.core.images import ImageShape, image_shape_of
from catvae.data.checks import check_class_counts, check_same_shape, check_split, flat_images, validation_count
from catvae.data.sources import Splits, class_label_names

Pair = tuple[torch.Tensor, torch.Tensor]
Batch = tuple[torch.Tensor, ...]  # TensorBatches slices any number of tensors alike (a Pair in this project)


class TensorBatches:
    """One pass over ``tensors`` (same first dimension) in batches of ``batch_size`` rows, or this
    process's share of it when ``world_size`` processes train together (``trainer=ddp``).

    Shuffled passes draw a new permutation each epoch from a CPU generator seeded once, so the
    batch order is the same on every device; unshuffled passes yield views (no copy). Lightning
    accepts any sized iterable as a dataloader (it replaces only a DataLoader's sampler, so the
    sharding is done here).

    Sharding by rank. Training (shuffled): every process draws the same permutation (same seed,
    same generator state), cuts it into the same global batches of ``batch_size`` and takes its
    slice, ``batch_size / world_size`` rows, of each: the processes' slices of a step together are
    the batch one process would have taken, and over an epoch they are disjoint and cover the
    permutation. As with torch's DistributedSampler (``drop_last=False``) the permutation is
    first padded with its own first rows to a multiple of ``world_size``, so every process takes
    as many steps with equal slices (DDP averages the processes' gradients, each the mean over its
    slice: equal slices make that the mean over the batch); at most ``world_size - 1`` images
    are seen twice an epoch. Evaluation (unshuffled): each process takes a contiguous block
    (``world_size`` near-equal blocks, no padding), or the whole set when it has fewer rows than
    processes; the models' epoch means add up the processes' sums and counts, so they are the
    means over the whole set either way.
    """

    def __init__(self, tensors: Batch, batch_size: int, shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not one of {world_size} processes")
        if shuffle and batch_size % world_size:
            raise ValueError(f"a batch of {batch_size} does not split evenly across {world_size} processes")
        self.batch_size, self.shuffle, self.rank, self.world_size = int(batch_size), shuffle, rank, world_size
        self.tensors = tensors if shuffle else self._block(tensors)
        self.generator = torch.Generator().manual_seed(seed) if shuffle else None

    def _block(self, tensors: Batch) -> Batch:
        """This process's contiguous block of an evaluation set (all of it when it is too small to share)."""
        count = len(tensors[0])
        if self.world_size == 1 or count < self.world_size:
            return tensors
        start, end = self.rank * count // self.world_size, (self.rank + 1) * count // self.world_size
        return tuple(t[start:end] for t in tensors)

    def _padded_count(self) -> int:
        return math.ceil(len(self.tensors[0]) / self.world_size) * self.world_size

    def __len__(self) -> int:
        count = self._padded_count() if self.shuffle else len(self.tensors[0])
        return math.ceil(count / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        count = len(self.tensors[0])
        if not self.shuffle:
            for start in range(0, count, self.batch_size):
                yield tuple(t[start : start + self.batch_size] for t in self.tensors)
            return
        order = torch.randperm(count, generator=self.generator)
        if self.world_size > 1:
            order = self.shard(order)
        order = order.to(self.tensors[0].device)
        for index in order.split(self.batch_size // self.world_size):
            yield tuple(t[index] for t in self.tensors)

    def shard(self, order: torch.Tensor) -> torch.Tensor:
        """This process's rows of an epoch's permutation ``order``, in step order: its slice of each
        global batch of the padded permutation."""
        padded = order.repeat(math.ceil(self._padded_count() / len(order)))[: self._padded_count()]
        return torch.cat([batch.chunk(self.world_size)[self.rank] for batch in padded.split(self.batch_size)])


class TensorDataModule(pl.LightningDataModule):
    """Train/validation/test tensors already in memory; several named test sets allowed.

    When attached to a Trainer the tensors move to its device on first use (once per module).
    """

    def __init__(
        self,
        train: Pair,
        val: Pair | None,
        test: dict[str, Pair],
        batch_size: int = 100,
        eval_batch_size: int = 1000,
        seed: int = 0,
    ):
        super().__init__()
        self.train, self.val, self.test = train, val, dict(test)
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed
        self._train_batches: TensorBatches | None = None
        self._shuffle_state: torch.Tensor | None = None  # from a checkpoint, for the next train_dataloader

    def device(self) -> torch.device:
        """The attached Trainer's device (CPU when used without one)."""
        trainer = getattr(self, "trainer", None)
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def ranks(self) -> dict[str, int]:
        """This process's rank and the number of processes of the attached Trainer (0 and 1 without one)."""
        trainer = getattr(self, "trainer", None)
        return {"rank": trainer.global_rank, "world_size": trainer.world_size} if trainer is not None else {}

    def on_device(self, pair: Pair) -> Batch:
        device = self.device()
        return tuple(t.to(device, non_blocking=True) for t in pair)

    def train_dataloader(self) -> TensorBatches:
        # One iterable for the whole fit, so its generator carries on from epoch to epoch.
        batches, ranks = self._train_batches, self.ranks()
        if batches is None or batches.tensors[0].device != self.device() or batches.world_size != ranks.get("world_size", 1):
            batches = TensorBatches(self.on_device(self.train), self.batch_size, shuffle=True, seed=self.seed, **ranks)
            self._train_batches = batches
        if self._shuffle_state is not None:
            assert batches.generator is not None  # made with shuffle=True above
            batches.generator.set_state(self._shuffle_state)
            self._shuffle_state = None
        return batches

    def state_dict(self) -> dict:
        """What a checkpoint keeps of the data: the shuffling generator's state, so that a resumed
        fit draws the epoch orders an uninterrupted one would have drawn."""
        if self._train_batches is None:
            return {}
        assert self._train_batches.generator is not None  # train_dataloader makes it with shuffle=True
        return {"shuffle_state": self._train_batches.generator.get_state()}

    def load_state_dict(self, state_dict: dict) -> None:
        self._shuffle_state = state_dict.get("shuffle_state")

    def val_dataloader(self) -> TensorBatches | list:
        if self.val is None:
            return []
        return TensorBatches(self.on_device(self.val), self.eval_batch_size, shuffle=False, **self.ranks())

    def test_dataloader(self) -> list[TensorBatches]:
        ranks = self.ranks()
        return [TensorBatches(self.on_device(pair), self.eval_batch_size, shuffle=False, **ranks) for pair in self.test.values()]


class ImageDataModule(TensorDataModule):
    """A labelled image dataset from a source (``data=mnist``, ``data=idx``), split for training.

    ``val_size`` of the training set, drawn with ``seed``, is held out for monitoring, as in
    scikit-learn's ``train_test_split``: a float in [0, 1) is a fraction (rounded to the nearest
    image; the default 1/12 keeps MNIST's 5,000 of 60,000 and scales down to small datasets), an
    int ≥ 0 a number of images. ``limit_train``/``limit_test`` keep only the first images of each
    set (tests, quick runs). ``class_names`` are how plots and grids call the classes (the label
    numbers when not given). After ``setup`` images are flat N×(C·H·W) rows and ``image_shape``
    is their (channels, height, width), what the networks, grids and metrics are sized by.
    ``setup`` refuses data the pipeline cannot use (see
    :mod:`catvae.data.checks`) with a :class:`~catvae.core.errors.DataError` naming the dataset.
    """

    def __init__(
        self,
        source: Callable[[], Splits],
        name: str,
        num_classes: int = 10,
        batch_size: int = 100,
        eval_batch_size: int = 1000,
        val_size: float | int = 1 / 12,
        limit_train: int | None = None,
        limit_test: int | None = None,
        seed: int = 0,
        root: str | None = None,
        class_names: Sequence[str] | None = None,
        image_shape: Sequence[int] | None = None,
    ):
        super().__init__((torch.empty(0), torch.empty(0)), None, {}, batch_size, eval_batch_size, seed)
        self.root = root  # where a folder-based source reads from (data=idx), kept for the record
        self.source, self.name, self.num_classes = source, name, num_classes
        self.val_size, self.limit_train, self.limit_test = val_size, limit_train, limit_test
        self.class_names = class_label_names(class_names, num_classes)
        # (channels, height, width): ``image_shape`` (data.image_shape) if given, checked against the
        # source's images at setup; otherwise known after setup.
        self.declared_shape = image_shape_of(image_shape) if image_shape is not None else None
        self.image_shape: ImageShape = self.declared_shape or (0, 0, 0)
        self._loaded = False

    def setup(self, stage: str | None = None) -> None:
        """Load the source once and split it; later calls are no-ops."""
        if self._loaded:
            return
        splits = self.source()
        train_x, train_y = splits.train_images, splits.train_labels
        test_x, test_y = splits.test_images, splits.test_labels
        if self.limit_train is not None:
            train_x, train_y = train_x[: self.limit_train], train_y[: self.limit_train]
        if self.limit_test is not None:
            test_x, test_y = test_x[: self.limit_test], test_y[: self.limit_test]
        dataset = self.describe()
        declared = getattr(splits, "image_shape", None)
        train_x, self.image_shape = flat_images(train_x, "training", dataset, declared)
        test_x, test_shape = flat_images(test_x, "test", dataset, declared)
        check_split(
            train_x,
            train_y,
            "training",
            dataset,
            self.num_classes,
            f"data.limit_train={self.limit_train}" if self.limit_train is not None else "",
        )
        check_split(
            test_x,
            test_y,
            "test",
            dataset,
            self.num_classes,
            f"data.limit_test={self.limit_test}" if self.limit_test is not None else "",
        )
        check_same_shape(self.image_shape, test_shape, dataset)
        if self.declared_shape is not None and self.image_shape != self.declared_shape:
            raise DataError(
                f"{dataset}: the images are {'×'.join(map(str, self.image_shape))} (channels×height×width), but "
                f"data.image_shape={list(self.declared_shape)}; set data.image_shape={list(self.image_shape)} or null"
            )
        val_count = validation_count(self.val_size, len(train_x), dataset)
        order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(self.seed))
        val_idx, train_idx = order[:val_count], order[val_count:]
        self.train = (train_x[train_idx], train_y[train_idx])
        self.val = (train_x[val_idx], train_y[val_idx]) if val_count else None
        check_class_counts(self.train[1], train_y, self.num_classes, dataset, val_count, self.val_size)
        self.test = {"test": (test_x, test_y)}
        self._loaded = True

    def describe(self) -> str:
        """How messages name this dataset: ``dataset 'idx-digits' (/data/digits)``."""
        return f"dataset {self.name!r}" + (f" ({self.root})" if self.root else "")
