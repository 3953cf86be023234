"""Fuzzing the IDX reader: whatever the bytes, ``read_idx`` / ``load_idx_folder`` return a well-formed
array or raise ``IdxFormatError``; never a numpy, struct, gzip or zlib exception.

Inputs are random bytes, every truncation of valid files (raw and gzipped), headers that lie
(type code, dimension count, sizes, magic) over data of any length, and gzip streams wrapping
garbage. Each property runs a bounded number of examples so the file stays at a few seconds.
Examples are random from run to run (no example database is written); a failure prints the
``@reproduce_failure`` blob that replays it.
"""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_idx import idx_bytes, make_folder, make_images

from catvae.data.idx import TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS, IdxFormatError, load_idx_folder, read_idx

# Several hundred examples a property; no per-example deadline, as the suite shares a loaded
# 2-core machine (a slow example is found by the file's total time, a few seconds).
FUZZ = settings(max_examples=300, deadline=None, database=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def read_bytes(scratch: Path, payload: bytes) -> np.ndarray | None:
    """``read_idx`` on ``payload``: the array, or None after an IdxFormatError naming the file."""
    path = scratch / "fuzzed"
    path.write_bytes(payload)
    try:
        array = read_idx(path)
    except IdxFormatError as error:
        assert str(error).startswith(str(path)), error  # the message names the file first
        return None
    assert array.dtype == np.uint8
    return array


def header(dtype: int, dims: list[int]) -> bytes:
    return struct.pack(">BBBB", 0, 0, dtype, len(dims)) + struct.pack(f">{len(dims)}i", *dims)


@FUZZ
@given(st.binary(max_size=512))
@example(b"")
@example(b"\x1f\x8b")
@example(b"\x00\x00\x08\x00")  # 0 dimensions
@example(b"\x00\x00\x08\x01\xff\xff\xff\xff")  # a negative size
def test_random_bytes(scratch, payload):
    read_bytes(scratch, payload)


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_behind_an_idx_prefix(scratch, tail):
    array = read_bytes(scratch, b"\x00\x00\x08" + tail)
    if array is not None:  # then the header said exactly what followed
        assert array.size == len(tail) - 1 - 4 * array.ndim


@FUZZ
@given(
    dtype=st.integers(0, 255),
    dims=st.lists(st.integers(-(2**31), 2**31 - 1) | st.integers(0, 6), max_size=40),
    data_len=st.integers(0, 300),
)
def test_headers_that_lie(scratch, dtype, dims, data_len):
    array = read_bytes(scratch, header(dtype, dims) + bytes(data_len))
    if array is not None:
        assert dtype == 0x08 and list(array.shape) == dims and array.size == data_len


@pytest.mark.slow
@FUZZ
@given(
    dtype=st.sampled_from([0x08, 0x08, 0x08, 0x09, 0x0D]),
    dims=st.integers(0, 255).flatmap(lambda rank: st.lists(st.sampled_from([1, 1, 1, 1, 0, 2, 3]), min_size=rank, max_size=rank)),
    off_by=st.sampled_from([0, 0, 0, -1, 1, 7]),
)
def test_headers_that_nearly_tell_the_truth(scratch, dtype, dims, off_by):
    """Any rank the header's byte allows (0..255), data as long as the sizes say, or a little off."""
    size = math.prod(dims)
    data_len = max(0, (size if size <= 4096 else 100) + off_by)  # sizes beyond 4096: a short file
    array = read_bytes(scratch, header(dtype, dims) + bytes(data_len))
    if array is not None:
        assert dtype == 0x08 and list(array.shape) == dims and array.size == data_len


@FUZZ
@given(st.binary(max_size=512), st.booleans())
def test_gzip_wrapped_garbage(scratch, garbage, well_formed_stream):
    # A valid gzip stream of garbage, or the gzip magic in front of garbage.
    payload = gzip.compress(garbage) if well_formed_stream else b"\x1f\x8b" + garbage
    read_bytes(scratch, payload)


@pytest.mark.slow
@FUZZ
@given(
    dims=st.lists(st.integers(0, 5), min_size=1, max_size=4),
    cut=st.integers(0, 10**6),
    flip=st.integers(0, 10**6),
    value=st.integers(0, 255),
)
def test_gzip_of_a_valid_file_cut_or_corrupted(scratch, dims, cut, flip, value):
    squeezed = gzip.compress(header(0x08, dims) + bytes(int(np.prod(dims))))
    corrupted = bytearray(squeezed)
    corrupted[flip % len(corrupted)] = value
    read_bytes(scratch, squeezed[: cut % len(squeezed)])
    read_bytes(scratch, bytes(corrupted))


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_every_truncation_of_a_valid_file(scratch, gz):
    whole = idx_bytes(make_images(2, rows=3, cols=5))
    if gz:
        whole = gzip.compress(whole)
    for length in range(len(whole)):
        assert read_bytes(scratch, whole[:length]) is None, length
    assert read_bytes(scratch, whole).shape == (2, 3, 5)


def test_every_truncation_of_a_dataset_file(tmp_path):
    """``load_idx_folder`` on a folder whose training labels (then images) are cut at every length."""
    written = make_folder(tmp_path)
    for stem in (TRAIN_LABELS, TRAIN_IMAGES):
        whole = idx_bytes(written[stem])
        for length in range(0, len(whole), 1 if stem == TRAIN_LABELS else 97):
            (tmp_path / stem).write_bytes(whole[:length])
            with pytest.raises(IdxFormatError, match=str(tmp_path / stem)):
                load_idx_folder(tmp_path)
        (tmp_path / stem).write_bytes(whole)
    assert load_idx_folder(tmp_path).train_labels.tolist() == [3, 1, 4, 1, 5]


@pytest.mark.slow
@settings(max_examples=150, deadline=None, database=None, print_blob=True)
@given(
    stem=st.sampled_from([TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS]),
    payload=st.binary(max_size=300)
    | st.builds(lambda dims, n: header(0x08, dims) + bytes(n), st.lists(st.integers(0, 30), max_size=4), st.integers(0, 400)),
)
def test_a_fuzzed_file_in_a_dataset_folder(scratch, stem, payload):
    root = scratch / "folder"
    make_folder(root)  # rewrites all four files
    (root / stem).write_bytes(payload)
    try:
        splits = load_idx_folder(root)
    except IdxFormatError as error:
        assert str(root) in str(error)
        return
    assert len(splits.train_images) == len(splits.train_labels) and len(splits.test_images) == len(splits.test_labels)


def test_zlib_and_gzip_errors_are_the_readers_own(scratch):
    """The gzip failures the fuzzer exercises, one of each kind, pinned."""
    good = gzip.compress(idx_bytes(np.arange(6, dtype=np.uint8)))
    bad_crc = good[:-8] + bytes(4) + good[-4:]
    bad_deflate = good[:10] + b"\xff" * (len(good) - 18) + good[-8:]
    for payload in (bad_crc, bad_deflate, good[:12], b"\x1f\x8b\x08\x00" + bytes(3)):
        assert read_bytes(scratch, payload) is None
