"""LightningDataModules over in-memory tensors, batched by indexing (no per-sample ``__getitem__``)."""
from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

from catvae.config import ConfigError
from catvae.data.sources import Splits

Pair = tuple[torch.Tensor, torch.Tensor]


def batch_loader(images: torch.Tensor, labels: torch.Tensor, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """A DataLoader whose sampler yields index lists; the dataset slices whole batches at once."""
    dataset = TensorDataset(images, labels)
    if shuffle:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
    else:
        sampler = SequentialSampler(dataset)
    return DataLoader(dataset, sampler=BatchSampler(sampler, batch_size, drop_last=False), batch_size=None)


class TensorDataModule(pl.LightningDataModule):
    """Train/validation/test tensors already in memory; several named test sets allowed."""

    def __init__(self, train: Pair, val: Pair | None, test: dict[str, Pair], batch_size: int = 100,
                 eval_batch_size: int = 1000, seed: int = 0):
        super().__init__()
        self.train, self.val, self.test = train, val, dict(test)
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed

    def train_dataloader(self) -> DataLoader:  # noqa: D102
        return batch_loader(*self.train, self.batch_size, shuffle=True, seed=self.seed)

    def val_dataloader(self) -> DataLoader | list:  # noqa: D102
        return [] if self.val is None else batch_loader(*self.val, self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> list[DataLoader]:  # noqa: D102
        return [batch_loader(*pair, self.eval_batch_size, shuffle=False) for pair in self.test.values()]


class ImageDataModule(TensorDataModule):
    """A labelled image dataset from a source (``data=mnist``, ``data=idx``), split for training.

    ``val_size`` images of the training set, drawn with ``seed``, are held out for monitoring;
    ``limit_train``/``limit_test`` keep only the first images of each set (tests, quick runs).
    """

    def __init__(self, source: Callable[[], Splits], name: str, num_classes: int = 10, batch_size: int = 100,
                 eval_batch_size: int = 1000, val_size: int = 5000, limit_train: int | None = None,
                 limit_test: int | None = None, seed: int = 0, root: str | None = None):
        super().__init__((torch.empty(0), torch.empty(0)), None, {}, batch_size, eval_batch_size, seed)
        self.root = root  # where a folder-based source reads from (data=idx), kept for the record
        self.source, self.name, self.num_classes = source, name, num_classes
        self.val_size, self.limit_train, self.limit_test = val_size, limit_train, limit_test
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
        if not 0 <= self.val_size < len(train_x):
            raise ConfigError("data.val_size", self.val_size, f"an integer >= 0 and below the {len(train_x)} training images")
        order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(self.seed))
        val_idx, train_idx = order[: self.val_size], order[self.val_size:]
        self.train = (train_x[train_idx], train_y[train_idx])
        self.val = (train_x[val_idx], train_y[val_idx]) if self.val_size else None
        self.test = {"test": (test_x, test_y)}
        self._loaded = True
