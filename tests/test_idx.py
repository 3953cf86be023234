"""Tests for catvae.data.idx on small IDX files written into tmp_path."""
from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from catvae.data.idx import IdxFormatError, find_idx_file, load_idx_folder, read_idx

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
    assert torch.equal(splits.train_images * 255, torch.from_numpy(
        written["train-images-idx3-ubyte"].reshape(N_TRAIN, 784)).float())
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


def test_data_idx_config_trains_on_the_folder(tmp_path: Path, make_config) -> None:
    """`data=idx data.root=DIR` names the dataset after its folder and serves its images."""
    from catvae.core.config import instantiate

    written = make_folder(tmp_path / "digits", gz=True)
    cfg = make_config(overrides=["data=idx", f"data.root={tmp_path / 'digits'}", "data.val_size=1"])
    assert cfg.data.name == "idx-digits"
    data = instantiate(cfg.data)
    data.setup()
    assert len(data.train[0]) + len(data.val[0]) == len(written["train-labels-idx1-ubyte"])
    assert data.test["test"][1].tolist() == written["t10k-labels-idx1-ubyte"].tolist()
