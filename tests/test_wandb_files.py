"""Round-trip tests for tools/wandb_files.py against real wandb offline runs."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

wandb = pytest.importorskip("wandb")

from wandb_files import (  # noqa: E402
    FILE_HEADER,
    WandbRunRecord,
    find_run_files,
    iter_raw_records,
    read_finished_run,
    read_run,
)

LOSSES = [1.0, 2.0, 3.0]
ACCS = [0.5, 0.625, 0.75]


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """Offline, silent wandb writing only under tmp_path."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / ".wandb-home"))
    for var in (
        "WANDB_PROJECT",
        "WANDB_ENTITY",
        "WANDB_RUN_GROUP",
        "WANDB_JOB_TYPE",
        "WANDB_RUN_ID",
        "WANDB_RESUME",
        "WANDB_NAME",
    ):
        monkeypatch.delenv(var, raising=False)
    yield tmp_path
    if wandb.run is not None:  # never leak an active run into other tests
        wandb.finish()


def _make_run(tmp_path: Path, **init_kwargs) -> str:
    run = wandb.init(
        mode="offline",
        dir=str(tmp_path),
        project="catvae-test",
        group="g1",
        job_type="search",
        config={"theta": 0.4, "n": 2, "nested": {"a": 1}},
        **init_kwargs,
    )
    for loss, acc in zip(LOSSES, ACCS):
        run.log({"loss": loss, "acc": acc})
    run.summary["objective"] = 0.925
    run_id = run.id
    run.finish()
    # W&B's service may still be writing the file when finish() returns: wait for its exit record.
    assert read_finished_run(next(p for p in find_run_files(tmp_path) if run_id in p.name)).finished
    return run_id


@pytest.mark.subprocess
def test_module_import_is_cheap():
    # Whatever catvae's __init__ imports is its business; the reader
    # itself must not pull in wandb/protobuf at import time.
    code = (
        "import sys, catvae; before = set(sys.modules); "
        "import wandb_files; "
        "bad = [m for m in set(sys.modules) - before "
        "if m.split('.')[0] in ('wandb', 'google')]; "
        "assert not bad, bad"
    )
    tools = Path(__file__).resolve().parents[1] / "tools"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tools)


@pytest.mark.slow
def test_roundtrip_plain_wandb(offline):
    tmp_path = offline
    run_id = _make_run(tmp_path)

    files = find_run_files(tmp_path)
    assert len(files) == 1  # latest-run symlink is not double counted
    path = files[0]
    assert path.name == f"run-{run_id}.wandb"
    assert path.parent.name.startswith("offline-run-")
    assert path.read_bytes()[:7] == FILE_HEADER == b":W&B\xe1\xbe\x00"

    rec = read_finished_run(path)
    assert isinstance(rec, WandbRunRecord)
    assert rec.run_id == run_id
    assert rec.project == "catvae-test"
    assert rec.group == "g1"
    assert rec.job_type == "search"

    assert rec.config["theta"] == 0.4
    assert rec.config["n"] == 2
    assert rec.config["nested"] == {"a": 1}

    rows = [r for r in rec.history if "loss" in r]
    assert [r["loss"] for r in rows] == LOSSES
    assert [r["acc"] for r in rows] == ACCS
    assert [r["_step"] for r in rows] == [0, 1, 2]

    # summary: last history values + the explicit summary write
    assert rec.summary["objective"] == 0.925
    assert rec.summary["loss"] == 3.0
    assert rec.summary["acc"] == 0.75
    assert rec.summary["_step"] == 2


@pytest.mark.slow
def test_large_values_summary_remove_and_nested_keys(offline):
    """Records > 32 KiB span blocks (FIRST/MIDDLE/LAST chunks)."""
    tmp_path = offline
    blob = "y" * 70_000
    run = wandb.init(mode="offline", dir=str(tmp_path), project="catvae-test")
    run.log({"loss": 0.25, "nest": {"a": {"b": 3}}, "train/loss": 1.5})
    run.log({"loss": 0.125, "big": blob, "bad": float("nan"), "inf": float("inf")})
    run.summary["blob"] = blob
    run.summary["gone"] = 1
    del run.summary["gone"]
    run.summary["nan"] = float("nan")
    run.finish()

    (path,) = find_run_files(tmp_path)
    rec = read_finished_run(path)
    assert [r["loss"] for r in rec.history] == [0.25, 0.125]
    assert rec.history[0]["nest/a/b"] == 3
    assert rec.history[0]["train/loss"] == 1.5
    assert rec.history[1]["big"] == blob
    assert rec.summary["blob"] == blob
    assert rec.summary["loss"] == 0.125
    assert "gone" not in rec.summary
    assert math.isnan(rec.history[1]["bad"])  # history keeps NaN/inf ...
    assert rec.history[1]["inf"] == math.inf
    assert rec.summary["nan"] is None  # ... but wandb writes a summary NaN as null


def test_two_runs_in_one_directory(offline):
    tmp_path = offline
    id1 = _make_run(tmp_path)
    id2 = _make_run(tmp_path)
    assert id1 != id2

    files = find_run_files(tmp_path)
    assert len(files) == 2
    assert files == sorted(files)
    recs = [read_finished_run(f) for f in files]
    assert {r.run_id for r in recs} == {id1, id2}
    for r in recs:
        assert [h["loss"] for h in r.history] == LOSSES
        assert r.summary["objective"] == 0.925


def test_truncated_and_corrupt_files(offline):
    tmp_path = offline
    _make_run(tmp_path)
    (path,) = find_run_files(tmp_path)
    data = path.read_bytes()
    n_records = len(list(iter_raw_records(path)))
    assert n_records > 5

    # a run that is still being written / crashed: trailing partial record dropped
    truncated = tmp_path / "trunc" / "run-trunc.wandb"
    truncated.parent.mkdir()
    truncated.write_bytes(data[:-3])
    assert len(list(iter_raw_records(truncated))) == n_records - 1
    assert read_run(truncated).history  # still readable,
    assert read_run(path).finished and not read_run(truncated).finished  # but it lost its exit record

    corrupt = tmp_path / "corrupt" / "run-corrupt.wandb"
    corrupt.parent.mkdir()
    flipped = bytearray(data)
    flipped[20] ^= 0xFF  # inside the first record's payload
    corrupt.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="checksum"):
        list(iter_raw_records(corrupt))

    not_wandb = tmp_path / "bad" / "run-bad.wandb"
    not_wandb.parent.mkdir()
    not_wandb.write_bytes(b"hello world, not a wandb file")
    with pytest.raises(ValueError, match="header"):
        read_run(not_wandb)

    assert len(find_run_files(tmp_path)) == 4
    assert find_run_files(path) == [path]


def test_pytorch_lightning_wandb_logger(offline):
    loggers = pytest.importorskip("pytorch_lightning.loggers")
    tmp_path = offline
    logger = loggers.WandbLogger(save_dir=str(tmp_path), offline=True, project="catvae-test", group="g2")
    logger.log_metrics({"train/loss": 0.5}, step=0)
    logger.log_hyperparams({"latent_dim": 20})
    run_id = logger.experiment.id
    logger.experiment.finish()

    (path,) = find_run_files(tmp_path)
    rec = read_finished_run(path)
    assert rec.run_id == run_id
    assert rec.project == "catvae-test"
    assert rec.group == "g2"
    assert rec.config["latent_dim"] == 20
    assert [r["train/loss"] for r in rec.history if "train/loss" in r] == [0.5]
    assert rec.history[0]["trainer/global_step"] == 0
    assert rec.summary["train/loss"] == 0.5
