"""Writing files so that a reader never sees half of one: the one write-then-rename helper.

A record or artifact is written to a temporary file in the same folder (so the rename stays on
one file system), flushed and fsynced, then renamed over the target with ``os.replace``, which
POSIX and Windows make atomic: a reader (or the next run after a kill, a crash or a full disk)
finds either the previous file, byte for byte, or the new one, never a truncated mix. On any
error the temporary file is removed; a full disk, a read-only file system or a missing permission
is raised as an OSError naming the file (:func:`storage_error`), whatever torch made of it.
Folders of several files are published the same way by :func:`swap_folder`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

# The machine's own refusals of a write: a full disk or quota, a read-only file system, a missing
# permission. catvae.config.task words them as one line naming the path and what to free or fix.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})
# A write that fails with less than this free on its file system failed for want of space.
FULL_BELOW_BYTES = 1 << 20
# What torch's zip writer says when a write under it failed; for a path (not a file object) it
# drops the OSError and its errno ("basic_ios::clear: iostream error", "unexpected pos 576 vs 534").
TORCH_WRITER_FAILURES = ("inline_container.cc", "PytorchStreamWriter", "iostream error")


def free_bytes(path: str | Path) -> int | None:
    """Bytes an unprivileged user may still write on the file system of ``path`` (its nearest existing
    folder); None where that cannot be read."""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        status = os.statvfs(folder)
    except (OSError, AttributeError):  # AttributeError: no statvfs (Windows)
        return None
    return status.f_bavail * status.f_frsize


def storage_error(error: BaseException, path: str | Path, scratch: str | Path | None = None) -> OSError | None:
    """The machine's refusal behind ``error``, raised while writing ``path``, as an OSError naming
    the file it names, else ``path`` (also for a file in ``scratch``, the temporary file or staging
    folder that is removed); None when ``error`` is something else.

    An OSError of :data:`STORAGE_ERRNOS` in ``error``'s chain (torch's writer raises its own
    RuntimeError over the ENOSPC of a file object's ``write``), or torch's writer failing on a file
    system with under :data:`FULL_BELOW_BYTES` free (that is ENOSPC: for a path torch keeps no errno).
    Call it before the half-written file is removed: until then it holds the space that ran out.
    """
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno in STORAGE_ERRNOS:
            named = cause.filename
            if named is not None and not (scratch is not None and Path(os.fsdecode(named)).is_relative_to(scratch)):
                return cause
            return OSError(cause.errno, cause.strerror or os.strerror(cause.errno), str(path))
        cause = cause.__cause__ or cause.__context__
    if isinstance(error, RuntimeError) and any(text in str(error) for text in TORCH_WRITER_FAILURES):
        free = free_bytes(path)
        if free is not None and free < FULL_BELOW_BYTES:
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return None


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
    except BaseException as error:
        refusal = storage_error(error, path, temporary)  # measured while the temporary file still holds its space
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if refusal is not None and refusal is not error:
            raise refusal from error
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


def write_npz(path: Path, **arrays: Any) -> None:
    """Write numpy ``arrays`` (``images=…, labels=…``) to ``path`` atomically, so no half-written file stays."""
    import numpy as np

    with atomic_write(path, binary=True) as handle:
        np.savez(handle, **arrays)
