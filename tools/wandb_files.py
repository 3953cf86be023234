"""Read wandb *offline* run files (``run-<id>.wandb``) without a wandb backend.

In offline mode (``WANDB_MODE=offline`` or ``wandb.init(mode="offline")``) a
run writes ``<dir>/wandb/offline-run-<time>-<id>/run-<id>.wandb``.  Metrics
live only in that binary file (there is no ``wandb-summary.json``), and
wandb 0.31 ships no Python reader for it (the old
``wandb.sdk.internal.datastore`` module is gone; the writer is the Go
``wandb-core`` service).  This module is a small self-contained reader.

A developer tool (``tools/``, not shipped in the wheel): the tests check the runs
catvae writes with it (pytest puts ``tools/`` on ``sys.path``: pyproject.toml's
``pythonpath``), and so does ``tools/bench_study.py``.

File format (verified against files written by wandb 0.31.0)
-------------------------------------------------------------
* A 7-byte file header, ``struct '<4sHB'``::

      b":W&B"  magic=0xBEE1 (bytes e1 be)  version=0
      i.e.  3a 57 26 42 e1 be 00

* Then the LevelDB log format: the file is cut into 32 KiB blocks *counted
  from the start of the file* (the header occupies the first 7 bytes of block
  0).  Each block holds chunks with a 7-byte header ``'<IHB'``
  (CRC-32, payload length, chunk type) followed by the payload.  Chunk types:
  FULL=1, FIRST=2, MIDDLE=3, LAST=4.  If fewer than 7 bytes remain in a
  block they are zero padding.  The checksum is the standard (IEEE,
  ``zlib.crc32``) CRC-32 of ``bytes([type]) + payload`` -- not LevelDB's
  masked Castagnoli CRC.
* Reassembled records are serialized ``wandb_internal_pb2.Record`` messages
  (``header``, ``run``, ``environment``, ``stats``, ``files``, ``telemetry``,
  ``metric``, ``config``, ``summary``, ``history``, ``output_raw``,
  ``exit`` ...).

What the file contains for the summary
--------------------------------------
wandb 0.31 writes **explicit** ``summary`` records: before every ``history``
row it writes a summary update mirroring that row's values (``loss``,
``_step``, ``_runtime``, ``_timestamp`` ...), every ``run.summary[k] = v``
becomes its own summary update, ``del run.summary[k]`` becomes a summary
``remove``, and ``wandb.finish()`` appends one more update of
``_wandb/runtime`` and ``_runtime`` before the ``exit`` record.  No final
"complete summary" record is written, so :func:`read_run` replays all summary
updates/removes in file order.

If a file has history rows but no summary record mirrors them (detected by
the absence of any ``_step`` summary update -- e.g. files from writers that
compute the summary at finish time), the summary is first seeded with the
last value of each history key and the explicit summary records are applied
on top.

Key naming
----------
Items carry either ``key`` or a ``nested_key`` path; a nested path is joined
with ``"/"`` (``{"nest": {"a": 1}}`` logged as history -> ``"nest/a"``;
the summary's internal ``_wandb.runtime`` -> ``"_wandb/runtime"``).  Keys
that themselves contain ``/`` (``"train/loss"``) are stored as a single
path element, so they come back unchanged.  Values are ``json.loads`` of
``value_json``.  Nothing is filtered out: history rows include ``_step``,
``_runtime``, ``_timestamp``; config includes wandb's internal ``_wandb``
entry; summary includes ``_wandb/runtime`` and ``_runtime`` (after
``finish()`` the latter is the integer run time in seconds).

Caveats: wandb-core serializes integral floats without a fraction
(``1.0`` is stored as ``"1"``), so they come back as ``int`` (still ``==``
to the float).  wandb's Python side writes a NaN set via ``run.summary[k]``
as JSON ``null`` (-> ``None``), while history keeps ``NaN``/``Infinity``
(decoded to ``float('nan')``/``inf``).  Offline runs usually have no display ``name`` (the server
assigns one on sync) unless ``wandb.init(name=...)`` was given.
"""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "FILE_HEADER",
    "WandbRunRecord",
    "find_run_files",
    "iter_raw_records",
    "read_run",
]

# ``struct.pack('<4sHB', b':W&B', 0xBEE1, 0)``
FILE_HEADER = b":W&B\xe1\xbe\x00"
_FILE_HEADER_LEN = 7
_BLOCK_LEN = 32 * 1024
_CHUNK_HEADER = struct.Struct("<IHB")  # crc32, length, type
_CHUNK_HEADER_LEN = _CHUNK_HEADER.size  # 7

_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


@dataclass
class WandbRunRecord:
    """Contents of one offline ``run-<id>.wandb`` file."""

    run_id: str = ""
    project: str = ""
    group: str = ""
    job_type: str = ""
    name: str = ""
    config: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    path: Path | None = None
    # True once the file holds the run's ``exit`` record: the run was finished, and W&B's service
    # has written it all (it may still be writing for a moment after ``run.finish()`` returns).
    finished: bool = False


def find_run_files(root: str | Path) -> list[Path]:
    """All ``run-*.wandb`` files under ``root`` (recursive), sorted.

    Symlinks (wandb's ``latest-run`` directory link) are not followed, so
    each run file appears once.
    """
    root = Path(root)
    if root.is_file():
        return [root] if _is_run_file(root.name) else []
    out: list[Path] = []
    for dirpath, _dirnames, filenames in os.walk(root):  # followlinks=False
        for fn in filenames:
            p = Path(dirpath) / fn
            if _is_run_file(fn) and not p.is_symlink():
                out.append(p)
    return sorted(out)


def _is_run_file(name: str) -> bool:
    return name.startswith("run-") and name.endswith(".wandb")


def iter_raw_records(path: str | Path) -> Iterator[bytes]:
    """Yield the serialized ``Record`` payloads of a wandb run file, in order.

    A truncated trailing record (run still being written / crashed) is
    silently dropped; a checksum mismatch or a malformed header raises
    ``ValueError``.
    """
    data = Path(path).read_bytes()
    if len(data) < _FILE_HEADER_LEN:
        raise ValueError(f"{path}: too short to be a wandb run file")
    ident, magic, version = struct.unpack("<4sHB", data[:_FILE_HEADER_LEN])
    if ident != b":W&B" or magic != 0xBEE1:
        raise ValueError(f"{path}: bad wandb file header {data[:7]!r}")
    if version != 0:
        raise ValueError(f"{path}: unsupported wandb file version {version}")

    pos = _FILE_HEADER_LEN
    end = len(data)
    pending: bytearray | None = None
    while pos < end:
        left = _BLOCK_LEN - (pos % _BLOCK_LEN)
        if left < _CHUNK_HEADER_LEN:  # block trailer padding
            pos += left
            continue
        if pos + _CHUNK_HEADER_LEN > end:
            break  # truncated chunk header
        crc, length, ctype = _CHUNK_HEADER.unpack_from(data, pos)
        if crc == 0 and length == 0 and ctype == 0:
            # zero-filled remainder of a block (preallocated / padded)
            pos += left
            continue
        start = pos + _CHUNK_HEADER_LEN
        stop = start + length
        if stop > end:
            break  # truncated payload
        if length > left - _CHUNK_HEADER_LEN:
            raise ValueError(f"{path}: chunk at offset {pos} crosses a block boundary")
        payload = data[start:stop]
        actual = zlib.crc32(payload, zlib.crc32(bytes([ctype]))) & 0xFFFFFFFF
        if actual != crc:
            raise ValueError(f"{path}: checksum mismatch at offset {pos}")
        pos = stop

        if ctype == _FULL:
            pending = None
            yield payload
        elif ctype == _FIRST:
            pending = bytearray(payload)
        elif ctype == _MIDDLE:
            if pending is None:
                raise ValueError(f"{path}: MIDDLE chunk without FIRST at offset {start - 7}")
            pending += payload
        elif ctype == _LAST:
            if pending is None:
                raise ValueError(f"{path}: LAST chunk without FIRST at offset {start - 7}")
            pending += payload
            yield bytes(pending)
            pending = None
        else:
            raise ValueError(f"{path}: unknown chunk type {ctype} at offset {start - 7}")


def _item_key(item: Any) -> str:
    if item.nested_key:
        return "/".join(item.nested_key)
    return item.key


def _json(value_json: str) -> Any:
    if value_json == "":
        return None
    return json.loads(value_json)


def _history_value(item: Any) -> Any:
    if item.value_json:
        return _json(item.value_json)
    kind = item.WhichOneof("value")
    if kind is None or kind == "none":
        return None
    if kind == "json":
        return _json(item.json)
    return getattr(item, kind)


def _config_value(value_json: str) -> Any:
    value = _json(value_json)
    if isinstance(value, dict) and "value" in value and set(value) <= {"value", "desc"}:
        return value["value"]
    return value


def _apply_config(config: dict, rec: Any) -> None:
    for item in rec.update:
        config[_item_key(item)] = _config_value(item.value_json)
    for item in rec.remove:
        config.pop(_item_key(item), None)


def _apply_summary(summary: dict, rec: Any) -> None:
    for item in rec.update:
        summary[_item_key(item)] = _json(item.value_json)
    for item in rec.remove:
        summary.pop(_item_key(item), None)


def read_finished_run(path: str | Path, timeout_s: float = 30.0) -> WandbRunRecord:
    """:func:`read_run` once the file holds the run's exit record (or after ``timeout_s``).

    ``run.finish()`` returns when W&B's service has the run's last records, not when its writer has
    put them in the file; reading straight after it, a loaded machine was seen to find the file
    without its first records. A killed run never gets an exit record: read it with read_run.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            run = read_run(path)
        except ValueError:  # not even its header written yet
            if time.monotonic() > deadline:
                raise
        else:
            if run.finished or time.monotonic() > deadline:
                return run
        time.sleep(0.05)


def read_run(path: str | Path) -> WandbRunRecord:
    """Parse one offline ``run-<id>.wandb`` file.

    ``config`` and ``summary`` replay every config/summary update and remove
    in file order; ``history`` is one dict per logged row.  See the module
    docstring for the exact semantics.
    """
    from wandb.proto import wandb_internal_pb2 as pb  # lazy: heavy import

    path = Path(path)
    out = WandbRunRecord(path=path)
    summary_records: list[Any] = []

    for raw in iter_raw_records(path):
        rec = pb.Record()  # type: ignore[attr-defined]  # protobuf builds the message classes at import; no stub
        rec.ParseFromString(raw)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            run = rec.run
            # A run record may be re-sent (e.g. on resume / rename); keep the
            # latest non-empty identity fields.
            out.run_id = run.run_id or out.run_id
            out.project = run.project or out.project
            out.group = run.run_group or out.group
            out.job_type = run.job_type or out.job_type
            out.name = run.display_name or out.name
            if run.HasField("config"):
                _apply_config(out.config, run.config)
            if run.HasField("summary"):
                summary_records.append(run.summary)
        elif kind == "config":
            _apply_config(out.config, rec.config)
        elif kind == "summary":
            summary_records.append(rec.summary)
        elif kind == "history":
            out.history.append({_item_key(item): _history_value(item) for item in rec.history.item})
        elif kind == "exit":
            out.finished = True

    mirrored = any(_item_key(item) == "_step" for s in summary_records for item in s.update)
    summary: dict = {}
    if out.history and not mirrored:
        for row in out.history:
            summary.update(row)
    for s in summary_records:
        _apply_summary(summary, s)
    out.summary = summary
    return out
