"""The one write-then-rename helper: a write that fails leaves the previous file as it was and no temporary file."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from catvae import artifacts
from catvae.core.files import atomic_write, swap_folder, write_json
from catvae.sweep.summary import COLUMNS, write_trials
from catvae.training.resume import AtomicCheckpointIO

PREVIOUS = b'{\n  "objective": 0.25\n}\n'


@pytest.fixture
def previous(tmp_path) -> Path:
    path = tmp_path / "record.json"
    path.write_bytes(PREVIOUS)
    return path


def assert_untouched(path: Path) -> None:
    assert path.read_bytes() == PREVIOUS
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left


def test_a_write_that_raises_midway_leaves_the_previous_file(previous):
    with pytest.raises(RuntimeError, match="disk full"), atomic_write(previous) as handle:
        handle.write('{"objective": 0.1')
        handle.flush()
        raise RuntimeError("disk full")
    assert_untouched(previous)


def test_a_binary_write_that_fails_in_torch_save_leaves_the_previous_checkpoint(previous):
    class Unsaveable:
        def __reduce__(self):
            raise RuntimeError("cannot save this")

    with pytest.raises(RuntimeError, match="cannot save this"):
        AtomicCheckpointIO().save_checkpoint({"weights": torch.ones(1000), "bad": Unsaveable()}, previous)
    assert_untouched(previous)


def test_a_csv_that_fails_after_its_header_leaves_the_previous_one(previous):
    with pytest.raises(ValueError):
        write_trials([{"not a column": 1}], previous)
    assert_untouched(previous)


def test_write_json_replaces_whole_and_refuses_what_it_cannot_write(previous):
    with pytest.raises(TypeError):
        write_json({"objective": object()}, previous)
    assert_untouched(previous)
    write_json({"objective": 0.5, "theta": [0.1, 0.2]}, previous)
    assert previous.read_text() == '{\n  "objective": 0.5,\n  "theta": [\n    0.1,\n    0.2\n  ]\n}\n'
    umask = os.umask(0)
    os.umask(umask)
    assert previous.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would make it, not mkstemp's 0600


def test_writers_of_records_and_artifacts_go_through_it(tmp_path):
    from catvae.core.files import write_npz

    rows = [{name: 1.0 for name in COLUMNS} | {"job": "0", "generator": "simple"}]
    write_trials(rows, tmp_path / "trials.csv")
    row = "0,simple," + ",".join(["1.0"] * (len(COLUMNS) - 2))
    assert (tmp_path / "trials.csv").read_text().splitlines() == [",".join(COLUMNS), row]
    images, labels = np.random.default_rng(0).random((3, 28, 28), dtype=np.float32), np.arange(3)
    write_npz(tmp_path / "out" / "x.npz", images=images, labels=labels)
    with np.load(tmp_path / "out" / "x.npz") as saved:
        assert np.array_equal(saved["images"], images) and np.array_equal(saved["labels"], labels)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["out", "trials.csv", "x.npz"]


def test_swap_folder_replaces_the_published_folder(tmp_path):
    final, staging = tmp_path / "seed0", tmp_path / ".seed0.staging"
    final.mkdir()
    (final / "vae.pt").write_bytes(b"old")
    staging.mkdir()
    (staging / "vae.pt").write_bytes(b"new")
    swap_folder(staging, final)
    assert (final / "vae.pt").read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["seed0"]
    with pytest.raises(KeyError), artifacts.staged_folder(final) as stage:
        (stage / "vae.pt").write_bytes(b"half")
        raise KeyError("killed")
    assert (final / "vae.pt").read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["seed0"]
    from catvae.sweep.records import record_best

    record = {"objective": 0.2, "eval": {"samples_per_label": 10}, "models": {"fingerprint": {"vae.pt": "ab"}}}
    path = tmp_path / "records" / "simple.json"
    assert record_best(path, record)
    assert json.loads(path.read_text()) == record
    # No temporary file left; only the (empty, hidden) lock file that serialises the records' writers.
    assert sorted(p.name for p in path.parent.iterdir()) == [".simple.json.lock", "simple.json"]


def test_a_swap_that_fails_halfway_puts_the_published_folder_back(tmp_path, monkeypatch):
    final, staging = tmp_path / "seed0", tmp_path / ".seed0.staging"
    final.mkdir()
    (final / "vae.pt").write_bytes(b"published")
    staging.mkdir()
    (staging / "vae.pt").write_bytes(b"new")
    renames = []

    def replace(source, target):  # the first rename (published folder aside) works, the second fails
        renames.append((Path(source).name, Path(target).name))
        if len(renames) == 2:
            raise OSError("disk gone")
        os.rename(source, target)

    monkeypatch.setattr("catvae.core.files.os.replace", replace)
    with pytest.raises(OSError, match="disk gone"):
        swap_folder(staging, final)
    assert (final / "vae.pt").read_bytes() == b"published"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".seed0.staging", "seed0"]


def test_a_fingerprint_is_hashed_once_per_file_version(tmp_path):
    for name in artifacts.REQUIRED:
        (tmp_path / name).write_bytes(name.encode())
    first = artifacts.fingerprint(tmp_path)
    assert first["vae.pt"] == __import__("hashlib").sha256(b"vae.pt").hexdigest()
    hits = artifacts._file_digest.cache_info().hits
    assert artifacts.fingerprint(tmp_path) == first and artifacts._file_digest.cache_info().hits == hits + len(artifacts.REQUIRED)
    (tmp_path / "vae.pt").write_bytes(b"retrained")  # a new training: new size and time, new digest
    os.utime(tmp_path / "vae.pt", ns=(1, 1))
    assert artifacts.fingerprint(tmp_path)["vae.pt"] == __import__("hashlib").sha256(b"retrained").hexdigest()
