"""The machine's own refusals (issue 15): a full disk, a read-only file system and a missing
permission end a command with one line naming the path and what to free or fix, exit status 2, no
traceback, no half-written temporary file, and the published artifacts as they were.

Small file systems are tmpfs mounts (root only; skipped with the reason where mounting is refused).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from conftest import TINY
from helpers import run_command

from catvae.config.task import user_message
from catvae.core.files import atomic_write, storage_error

# TINY without CAS: the tests need a training that writes, not the whole evaluation.
TRAIN = [*TINY, "eval.cas=false"]


@contextmanager
def small_file_system(folder: Path, size: str, read_only: bool = False) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``folder`` (read-only after mounting when asked), unmounted at the end."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small file system here (needs root): {mounted.stderr.strip()}")
    try:
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True, capture_output=True)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def train(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m catvae.train`` with the W&B logger offline, run from ``cwd``."""
    env = {**os.environ, "WANDB_MODE": "offline"}
    return run_command("train", *TRAIN, *args, env=env, cwd=cwd, timeout=600)


def assert_one_line(result: subprocess.CompletedProcess, message: str) -> None:
    """Exit status 2 and ``message`` as the one error line, no traceback anywhere."""
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {message}"], output[-3000:]
    assert "Traceback" not in output


def leftovers(folder: Path) -> list[str]:
    """Temporary files (``.*.partial``) and staging folders (``.*.staging-*``, ``.*.old-*``) under ``folder``."""
    return sorted(str(p) for p in folder.rglob(".*") if ".partial" in p.name or ".staging-" in p.name or ".old-" in p.name)


def test_full_disk_during_training(tmp_path):
    """A log folder of 3 MiB fills while the VAE's first checkpoint is written (it needs ~9 MiB)."""
    with small_file_system(tmp_path / "disk", "3m") as disk:
        result = train(f"paths.log_dir={disk}", cwd=tmp_path)
        assert_one_line(
            result,
            f"the disk is full: writing {disk}/checkpoints/mnist/elbo-4/seed0/vae/last.ckpt failed (No space left on device) "
            f"on the file system at {disk} (3.0 MiB in all). Free space there, or set paths.checkpoints_dir "
            "(or paths.log_dir, which holds it) to a folder on a disk with room, and run the command again",
        )
        assert leftovers(disk) == []
        assert not list(disk.rglob("*.ckpt")) and not (disk / "artifacts").exists()


def test_full_artifacts_disk_keeps_the_published_artifacts(trained, tmp_path):
    """Retraining a published key onto a full artifacts disk: the staged artifacts do not fit; the
    published ones stay byte for byte, and no staging folder is left."""
    with small_file_system(tmp_path / "artifacts", "24m") as disk:
        shutil.copytree(trained["log_dir"] / "artifacts", disk, dirs_exist_ok=True)
        before = {str(p.relative_to(disk)): p.read_bytes() for p in sorted(disk.rglob("*")) if p.is_file()}
        status = os.statvfs(disk)
        ballast = disk / "ballast"
        with open(ballast, "wb") as handle:  # leave 256 KiB: the judge is loaded, the new vae.pt does not fit
            handle.write(b"\0" * (status.f_bavail * status.f_frsize - (256 << 10)))
        result = train(f"paths.log_dir={tmp_path / 'logs'}", f"paths.artifacts_dir={disk}", cwd=tmp_path)
        assert_one_line(
            result,
            f"the disk is full: writing {disk}/mnist/elbo-4/seed0 failed (No space left on device) on the file system "
            f"at {disk} (24.0 MiB in all). Free space there, or set paths.artifacts_dir to a folder on a disk with room, "
            "and run the command again",
        )
        ballast.unlink()
        after = {str(p.relative_to(disk)): p.read_bytes() for p in sorted(disk.rglob("*")) if p.is_file()}
        assert after == before
        assert leftovers(disk) == [] and leftovers(tmp_path / "logs") == []


def test_read_only_log_folder(tmp_path):
    with small_file_system(tmp_path / "disk", "1m", read_only=True) as disk:
        result = train(f"paths.log_dir={disk}", cwd=tmp_path)
        assert_one_line(
            result,
            f"the file system is read-only: writing {disk}/train failed (Read-only file system; {disk} is mounted "
            "read-only). Remount it read-write, or set paths.log_dir to a writable folder, and run the command again",
        )
        assert list(disk.iterdir()) == []


def test_log_folder_without_permission(tmp_path):
    """A log folder the process may not write: read-only by mode, or (as root, whom modes do not stop)
    immutable (``chattr +i``, EPERM)."""
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o555)
    as_root = os.geteuid() == 0
    if as_root and subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root, and this file system has no immutable attribute (chattr +i)")
    try:
        result = train(f"paths.log_dir={folder}", cwd=tmp_path)
    finally:
        if as_root:
            subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
    user = __import__("getpass").getuser()
    reason, tools = (
        ("Operation not permitted", "chmod, chown, or chattr -i where it is immutable")
        if as_root
        else (
            "Permission denied",
            "chmod, chown",
        )
    )
    assert_one_line(
        result,
        f"permission denied: {user} may not write {folder}/train ({reason}; {folder} has mode 555, owner uid "
        f"{os.geteuid()}). Give {user} write permission there ({tools}), or set paths.log_dir to a folder {user} "
        "can write, and run the command again",
    )
    assert list(folder.iterdir()) == []


def test_torch_save_onto_a_full_disk(tmp_path):
    """torch.save to a path keeps no errno ("unexpected pos …"); through a file object it raises over
    the ENOSPC. Both are ENOSPC naming the target, and atomic_write leaves no temporary file."""
    tensor = torch.zeros(1_000_000)  # 4 MB on a 1 MiB file system
    with small_file_system(tmp_path / "disk", "1m") as disk:
        with pytest.raises(RuntimeError) as raised:
            torch.save(tensor, disk / "direct.pt")
        refusal = storage_error(raised.value, disk / "direct.pt")
        assert refusal is not None and (refusal.errno, refusal.filename) == (errno.ENOSPC, str(disk / "direct.pt"))
        (disk / "direct.pt").unlink()

        with pytest.raises(OSError) as raised_atomic, atomic_write(disk / "atomic.pt", binary=True) as handle:
            torch.save(tensor, handle)
        assert (raised_atomic.value.errno, raised_atomic.value.filename) == (errno.ENOSPC, str(disk / "atomic.pt"))
        assert list(disk.iterdir()) == []
        assert user_message(raised_atomic.value) == (
            f"the disk is full: writing {disk}/atomic.pt failed (No space left on device) on the file system at {disk} "
            "(1.0 MiB in all). Free space there, or set paths.log_dir to a folder on a disk with room, and run the command again"
        )


def test_a_bug_stays_a_bug():
    """A RuntimeError that is not torch's writer, and an OSError of another kind, keep their traceback."""
    assert user_message(RuntimeError("shape mismatch")) is None
    assert user_message(OSError(errno.EIO, "Input/output error", f"/tmp/{uuid.uuid4().hex}")) is None


def test_sizes_and_settings_in_words(tmp_path):
    """A large file system in GiB, a small one in MiB; the closest ``paths.*`` setting is named."""
    from omegaconf import OmegaConf

    from catvae.config.task import file_system_size, moving_setting

    status = os.statvfs("/")
    expected = status.f_blocks * status.f_frsize / 2**30
    assert expected >= 1 and file_system_size("/") == f"{expected:.1f} GiB in all"
    cfg = OmegaConf.create({"paths": {"log_dir": "/x/logs", "artifacts_dir": "/x/logs/artifacts", "checkpoints_dir": "/y"}})
    assert moving_setting("/x/logs/artifacts/mnist/a.pt", cfg) == "paths.artifacts_dir (or paths.log_dir, which holds it)"
    assert moving_setting("/y/mnist/vae/last.ckpt", cfg) == "paths.checkpoints_dir"
    assert moving_setting("/data/mnist.idx", cfg) is None
