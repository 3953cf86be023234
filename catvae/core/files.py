"""Writing files so that a reader never sees half of one: the one write-then-rename helper.

A record or artifact is written to a temporary file in the same folder (so the rename stays on
one file system), flushed and fsynced, then renamed over the target with ``os.replace``, which
POSIX and Windows make atomic: a reader (or the next run after a kill, a crash or a full disk)
finds either the previous file, byte for byte, or the new one, never a truncated mix. On any
error the temporary file is removed. Folders of several files are published the same way by
:func:`swap_folder`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (the entry lives in the folder); a no-op where folders cannot be opened."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _read_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


# Read once, at import: os.umask can only be read by setting it, and a umask of 0 set per write
# would, for that instant, let other threads (W&B, Lightning) create world-writable files.
_UMASK = _read_umask()


def _default_mode() -> int:
    """The permissions ``open()`` would give a new file (mkstemp's are 0600)."""
    return 0o666 & ~_UMASK


@contextlib.contextmanager
def atomic_write(path: str | Path, binary: bool = False, **open_kwargs: Any) -> Iterator[IO]:
    """Yield a file open for writing; when the block ends without error it replaces ``path``.

    ``binary`` opens it in ``"wb"`` (for ``torch.save``, ``np.savez``, ``savefig``), else text
    (``open_kwargs`` such as ``newline=""`` for csv pass through). The folder is created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(descriptor, "wb" if binary else "w", **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, _default_mode())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_folder(path.parent)


def write_text(text: str, path: str | Path) -> Path:
    """``path.write_text(text)``, atomically."""
    with atomic_write(path) as handle:
        handle.write(text)
    return Path(path)


def write_json(data: dict, path: str | Path) -> Path:
    """``data`` as indented JSON, atomically (the records every command leaves: summary, result, best)."""
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"  # serialised first: a bad value leaves no file
    return write_text(text, path)


def swap_folder(staging: Path, final: Path) -> None:
    """Put the finished folder ``staging`` in the place of ``final`` (replaced if present).

    Every file of ``staging`` is fsynced first, so what is swapped in is on disk. Two renames
    (``final`` aside, ``staging`` in) because a folder cannot replace a non-empty one; a kill
    between them leaves the previous folder as ``.<name>.old-*`` beside it, never a mix.
    """
    for file in staging.rglob("*"):
        if file.is_file():
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())
    retired = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
    if final.exists():
        os.replace(final, retired)
    try:
        os.replace(staging, final)
    except BaseException:
        if retired.exists():
            os.replace(retired, final)  # the previous artifacts stay published
        raise
    _fsync_folder(final.parent)
    shutil.rmtree(retired, ignore_errors=True)
