"""Read MNIST-style datasets stored in the IDX file format.

An IDX file is a tiny header followed by a dense, row-major array:

* bytes 0-1: always zero;
* byte 2: the element type (0x08 = unsigned byte, the only one MNIST and
  Fashion-MNIST use; 0x09 signed byte, 0x0B int16, 0x0C int32, 0x0D float32
  and 0x0E float64 exist in the spec but are not supported here);
* byte 3: the number of dimensions ``d``;
* then ``d`` big-endian int32 sizes, then the data (``prod(sizes)`` elements).

Read as one big-endian int32, the first four bytes are the "magic number":
0x00000803 for an image file (N × rows × cols) and 0x00000801 for a label
file (N).  The files are usually distributed gzipped; gzip is recognised by
its magic bytes (1f 8b), whatever the file is called.

A dataset folder holds four files::

    train-images-idx3-ubyte   train-labels-idx1-ubyte
    t10k-images-idx3-ubyte    t10k-labels-idx1-ubyte

each optionally with a ``.gz`` suffix, either directly in the folder or in
torchvision's cache layout (``root/raw/`` or ``root/MNIST/raw/``,
``root/FashionMNIST/raw/``, ...).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from catvae.core.errors import DataError
from catvae.data.sources import Splits

__all__ = ["IdxFormatError", "find_idx_file", "load_idx_folder", "read_idx"]

IMAGE_MAGIC = 0x00000803
LABEL_MAGIC = 0x00000801

_GZIP_MAGIC = b"\x1f\x8b"
MAX_DIMS = 32  # numpy 1.x's most array dimensions (datasets use 1 to 4)
_UBYTE = 0x08
_TYPE_NAMES = {
    0x08: "unsigned byte",
    0x09: "signed byte",
    0x0B: "int16",
    0x0C: "int32",
    0x0D: "float32",
    0x0E: "float64",
}

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"


class IdxFormatError(DataError):
    """An IDX file or dataset folder is missing, malformed or inconsistent.

    The message always starts with the offending path and says what is wrong.
    """


def _load_bytes(path: Path) -> bytes:
    """Return the file's content, gunzipped if it starts with the gzip magic."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise IdxFormatError(f"{path}: missing (no such file)") from None
    except OSError as exc:
        raise IdxFormatError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise IdxFormatError(f"{path}: truncated: gzip stream ends before its end marker ({len(raw)} compressed bytes)") from None
    except (OSError, zlib.error) as exc:
        raise IdxFormatError(f"{path}: corrupt gzip data: {exc}") from None


def _parse(path: Path) -> tuple[int, np.ndarray]:
    """Read one IDX file and return ``(magic number, uint8 array)``."""
    data = _load_bytes(path)
    if len(data) < 4:
        raise IdxFormatError(f"{path}: truncated: {len(data)} bytes, too short for the 4-byte IDX header")
    if data[0] != 0 or data[1] != 0:
        raise IdxFormatError(f"{path}: not an IDX file: first two bytes are 0x{data[0]:02X}{data[1]:02X}, expected 0x0000")
    magic = struct.unpack(">I", data[:4])[0]
    dtype, ndim = data[2], data[3]
    if dtype != _UBYTE:
        kind = _TYPE_NAMES.get(dtype, "unknown type")
        raise IdxFormatError(f"{path}: data type 0x{dtype:02X} ({kind}) is not supported; only 0x{_UBYTE:02X} (unsigned byte) is")
    if ndim == 0:
        raise IdxFormatError(f"{path}: header declares 0 dimensions")
    if ndim > MAX_DIMS:  # found by fuzzing: numpy raised ValueError from reshape
        raise IdxFormatError(f"{path}: header declares {ndim} dimensions; at most {MAX_DIMS} are supported")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise IdxFormatError(
            f"{path}: truncated: header declares {ndim} dimensions, which need {header_len} header bytes, file holds {len(data)}"
        )
    dims = struct.unpack(f">{ndim}i", data[4:header_len])
    if any(d < 0 for d in dims):
        raise IdxFormatError(f"{path}: negative dimension in header {dims}")

    expected = 1
    for d in dims:
        expected *= d
    held = len(data) - header_len
    shape = "×".join(str(d) for d in dims)
    promise = f"{shape} = {expected}" if ndim > 1 else f"{expected}"
    if held < expected:
        raise IdxFormatError(f"{path}: truncated: header promises {promise} bytes of data, file holds {held}")
    if held > expected:
        raise IdxFormatError(
            f"{path}: trailing data: header promises {promise} bytes of data, file holds {held} ({held - expected} extra)"
        )
    array = np.frombuffer(data, dtype=np.uint8, count=expected, offset=header_len)
    return magic, array.reshape(dims).copy()  # copy: writable, independent of `data`


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (raw or gzipped) into a uint8 array shaped as its header says.

    Raises :class:`IdxFormatError` if the file is missing, is not IDX, uses an
    element type other than unsigned byte, or holds more or fewer data bytes
    than its header promises.
    """
    return _parse(Path(path))[1]


def find_idx_file(root: Path, stem: str) -> Path:
    """Find ``stem`` or ``stem.gz`` in ``root``, ``root/raw`` or ``root/*/raw``.

    The first directory in that order holding either name wins; within a
    directory the uncompressed file is preferred (torchvision keeps both).
    If the file is only found under several ``root/*/raw`` folders (say
    ``MNIST/raw`` and ``FashionMNIST/raw``), that is an error rather than a guess.
    """
    root = Path(root)

    def lookup(directory: Path) -> Path | None:
        for name in (stem, stem + ".gz"):
            candidate = directory / name
            if candidate.is_file():
                return candidate
        return None

    for directory in (root, root / "raw"):
        found = lookup(directory)
        if found is not None:
            return found
    hits = [f for d in sorted(root.glob("*/raw")) if (f := lookup(d)) is not None]
    if len(hits) > 1:
        where = ", ".join(str(h) for h in hits)
        raise IdxFormatError(f"{root}: ambiguous: {stem} found in several folders ({where}); point root at the one you mean")
    if hits:
        return hits[0]
    raise IdxFormatError(
        f"{root / stem}: missing; expected one of {stem} or {stem}.gz in {root} "
        f"(also looked in {root / 'raw'} and {root / '*' / 'raw'})"
    )


def _read_checked(path: Path, magic_expected: int, what: str) -> np.ndarray:
    """Read ``path`` and insist on the given magic number (which fixes the rank)."""
    magic, array = _parse(path)
    if magic != magic_expected:
        raise IdxFormatError(f"{path}: magic number 0x{magic:08X} is not {what} (expected 0x{magic_expected:08X})")
    return array


def _load_split(root: Path, images_stem: str, labels_stem: str) -> tuple[Path, np.ndarray, np.ndarray]:
    images_path = find_idx_file(root, images_stem)
    labels_path = find_idx_file(root, labels_stem)
    images = _read_checked(images_path, IMAGE_MAGIC, "an image file")
    labels = _read_checked(labels_path, LABEL_MAGIC, "a label file")
    if images.shape[0] != labels.shape[0]:
        other = labels_path.name if labels_path.parent == images_path.parent else labels_path
        raise IdxFormatError(f"{images_path}: {images.shape[0]} images but {other} holds {labels.shape[0]} labels")
    return images_path, images, labels


def _to_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    n, rows, cols = images.shape
    flat = torch.from_numpy(images.reshape(n, rows * cols).astype(np.float32))
    return flat.div_(255.0), torch.from_numpy(labels.astype(np.int64))


def load_idx_folder(root: str | Path, package: str | None = None) -> Splits:
    """Load the four MNIST-style IDX files under ``root`` as :class:`Splits`.

    Images come back as float32 ``N × (rows·cols)`` tensors in [0, 1] (pixel / 255),
    labels as int64 ``N`` tensors.  Raises :class:`IdxFormatError` when the
    folder or a file is missing, a file is malformed or of the wrong kind, a
    split's image and label counts differ, or train and test image sizes differ.
    ``package`` names the Debian package that installs the folder (``data=fashion_mnist``:
    ``dataset-fashion-mnist``), so that a missing folder says how to get it.
    """
    root = Path(root)
    if not root.exists() and package:
        raise IdxFormatError(
            f"dataset folder {root} not found: install the Debian package {package} "
            f"(apt-get install {package}), or point data.root at a folder of its IDX files"
        )
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        raise IdxFormatError(f"{root}: dataset directory {what}")
    train_path, train_images, train_labels = _load_split(root, TRAIN_IMAGES, TRAIN_LABELS)
    test_path, test_images, test_labels = _load_split(root, TEST_IMAGES, TEST_LABELS)
    if train_images.shape[1:] != test_images.shape[1:]:
        tr = "×".join(map(str, train_images.shape[1:]))
        te = "×".join(map(str, test_images.shape[1:]))
        raise IdxFormatError(f"{test_path}: images are {te} but {train_path} images are {tr}")
    train_x, train_y = _to_tensors(train_images, train_labels)
    test_x, test_y = _to_tensors(test_images, test_labels)
    _, rows, cols = train_images.shape  # N×rows×cols, as _to_tensors has just unpacked it
    return Splits(train_x, train_y, test_x, test_y, image_shape=(rows, cols))
