"""What the tests share besides fixtures: the one way to run a command as a user does (its
environment and its subprocess), and the one snapshot of a file tree (to show nothing changed)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from command_fork import CommandForkServer, ForkedProcess

REPOSITORY = Path(__file__).resolve().parent.parent

# Variables a launcher (SLURM, torchrun) may have left in the environment: a command started by a
# test is a fresh single process, not one rank of the job the test runs in.
LAUNCHER_VARIABLES = ("LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def command_env(
    log_dir: Path | str | None = None,
    *,
    pythonpath: Iterable[Path | str] = (),
    checkout_first: bool = False,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment a command runs in under the tests: this process's, W&B offline and quiet,
    ``CATVAE_LOG_DIR`` = ``log_dir`` when given, no launcher's rank variables.

    ``pythonpath``: folders put first on the path (a ``sitecustomize.py`` hook); ``checkout_first``:
    this checkout's ``catvae`` before an installed one (by default the command imports the package
    the way a user's would: installed, as CI installs the wheel)."""
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONSOLE": "off"}
    for name in [name for name in env if name.startswith("SLURM_") or name in LAUNCHER_VARIABLES]:
        del env[name]
    if log_dir is not None:
        env["CATVAE_LOG_DIR"] = str(log_dir)
    first = [str(folder) for folder in pythonpath] + ([str(REPOSITORY)] if checkout_first else [])
    if first:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [*first, os.environ.get("PYTHONPATH")]))
    if extra:
        env.update(extra)
    return env


def command_line(module: str, *args: str) -> list[str]:
    """``python -m catvae.<module> ARGS`` (``module``: ``train`` or ``catvae.train``)."""
    return [sys.executable, "-m", module if module.startswith("catvae.") else f"catvae.{module}", *args]


def command_folder(cwd: Path | str | None) -> str:
    """The folder a command runs in: ``cwd`` (created), or an empty one of its own (under
    ``$CATVAE_TEST_FOLDERS``, the session's base folder, where conftest sets it)."""
    if cwd is None:
        root = os.environ.get("CATVAE_TEST_FOLDERS")
        if root:
            Path(root).mkdir(parents=True, exist_ok=True)
        return tempfile.mkdtemp(prefix="cwd-", dir=root or None)
    Path(cwd).mkdir(parents=True, exist_ok=True)
    return str(Path(cwd).resolve())


def run_command(
    module: str,
    *args: str,
    log_dir: Path | str | None = None,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
    fresh: bool = False,
) -> subprocess.CompletedProcess:
    """Run ``python -m catvae.<module> ARGS`` to its end, as a user does: from ``cwd`` (created; by
    default an empty folder of its own, not the checkout, whose ``catvae/`` would shadow the installed
    package, :func:`command_folder`), in :func:`command_env` of ``log_dir`` unless ``env`` is given;
    stdout and stderr captured as text.

    The process is forked from an interpreter that has imported catvae's libraries already
    (tests/command_fork.py: a real process without the ≈ 5 s of imports) unless its ``PYTHONPATH``
    would import another catvae or ``fresh`` asks for a fresh interpreter."""
    folder = command_folder(cwd)
    env = dict(env) if env is not None else command_env(log_dir)
    line = command_line(module, *args)
    if not fresh and CommandForkServer.serves(env, folder):
        return CommandForkServer.get().run(line[2], line[3:], env, folder, timeout)
    return subprocess.run(line, capture_output=True, text=True, env=env, cwd=folder, timeout=timeout)


def start_command(
    module: str,
    *args: str,
    log_dir: Path | str | None = None,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    merge_stderr: bool = False,
    fresh: bool = False,
) -> subprocess.Popen | ForkedProcess:
    """:func:`run_command` in the background: the running process (stdout, stderr as text, read once
    it has ended; ``merge_stderr``: both on stdout), forked as :func:`run_command` forks."""
    folder = command_folder(cwd)
    env = dict(env) if env is not None else command_env(log_dir)
    line = command_line(module, *args)
    if not fresh and CommandForkServer.serves(env, folder):
        return CommandForkServer.get().start(line[2], line[3:], env, folder, merge_stderr)
    return subprocess.Popen(
        line,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        text=True,
        env=env,
        cwd=folder,
    )


def digest(content: bytes) -> str:
    """The SHA-256 of ``content`` (what :func:`snapshot` records of each file)."""
    return hashlib.sha256(content).hexdigest()


def snapshot(folder: Path, *, folders: bool = False) -> dict[str, str | None]:
    """Every file under ``folder`` by relative path, with the SHA-256 of its bytes; with ``folders``
    also every folder (None), so that a new empty folder shows too. Equal snapshots: nothing was
    added, removed or changed."""
    return {
        str(path.relative_to(folder)): digest(path.read_bytes()) if path.is_file() else None
        for path in sorted(folder.rglob("*"))
        if folders or path.is_file()
    }


def assert_refused(result: subprocess.CompletedProcess, message: str) -> None:
    """A command refused its input as a user error: exit status 2, one ``error: MESSAGE`` line, no traceback."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"error: {message}" in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.count("error: ") == 1, result.stderr


@contextlib.contextmanager
def loggers_kept() -> Iterator[None]:
    """The process's named loggers as they were, whatever the block configures: Hydra's job logging
    and import-linter (``logging.config.dictConfig``) disable the loggers that exist when they run, and
    a later test's ``caplog`` would then see nothing from them (``catvae.training.resume``, say)."""

    def named() -> dict[str, logging.Logger]:
        return {name: log for name, log in logging.root.manager.loggerDict.items() if isinstance(log, logging.Logger)}

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    states = {name: (log.disabled, log.level, log.propagate) for name, log in named().items()}
    try:
        yield
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
            handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, log in named().items():
            log.disabled, log.level, log.propagate = states.get(name, (False, logging.NOTSET, True))
