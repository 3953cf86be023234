"""Commands started from an interpreter that has already imported catvae: a fork server for the tests.

A command's process spends ≈ 5 s of this project's 2-core CPU importing torch, Lightning, torchmetrics,
Hydra and W&B before it reads its first argument, and the suite starts about a hundred of them. The
server is one interpreter per pytest worker that imports those libraries once and then only forks:
each :func:`helpers.run_command` becomes a real child process (its own pid, environment, working
folder, stdout/stderr, exit status, signals and ``atexit`` handlers) that runs ``python -m
catvae.<module> ARGS`` through :func:`runpy.run_module`, as the interpreter's ``-m`` does.

The server never runs a torch operation, starts a thread or imports W&B, so what it hands a child
is what a fresh interpreter would have after its imports (no OpenMP pool, no service connection).
Folders a command's ``PYTHONPATH`` puts before the server's go first on the child's path, and a
``sitecustomize.py`` in them runs before the command, as the interpreter's ``site`` would. What a
fork cannot give, the client does not ask of it: a path that would import another ``catvae`` (the
checkout put first) runs in a fresh interpreter, and so does every command when
``CATVAE_TEST_FRESH_PROCESSES=1``.

Protocol: one JSON request per line on the server's stdin (``start`` a child, ``wait`` for one),
one JSON reply per line on its stdout.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

# What every command imports (the expensive part of its start); the command modules themselves are
# executed fresh in each child, as ``__main__``. Not W&B: its import creates a media folder that the
# first child to exit would delete for all the others.
PRELOAD = (
    "torch",
    "pytorch_lightning",
    "torchmetrics",
    "hydra",
    "optuna",
    "catvae.config.settings",
    "catvae.config.task",
    "catvae.config.validate",
    "catvae.training.stages",
)


def exit_status(code: object) -> int:
    """The process exit status Python gives ``SystemExit(code)``: None → 0, an int → itself, anything
    else printed on stderr → 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def run_child(request: dict) -> None:
    """In the forked child: become ``python -m MODULE ARGS`` in the request's folder and environment,
    run it, and exit as the interpreter would (threads joined, ``atexit`` handlers run)."""
    import atexit
    import importlib
    import runpy
    import threading
    import traceback

    status = 1
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(out, fd)
            os.close(out)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        signal.signal(signal.SIGINT, signal.default_int_handler)
        module, args, first = request["module"], request["args"], request["path_first"]
        sys.modules.pop(module, None)  # executed anew as __main__, as ``-m`` does
        sys.path[:0] = [os.getcwd(), *first]  # ``-m`` puts the working folder first, then PYTHONPATH
        if any((Path(folder) / "sitecustomize.py").is_file() for folder in first):
            sys.modules.pop("sitecustomize", None)
            importlib.import_module("sitecustomize")
        sys.argv = [module, *args]
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
            status = 0
        except SystemExit as exited:
            status = exit_status(exited.code)
        except BaseException:
            traceback.print_exc()
            status = 1
        threading._shutdown()  # type: ignore[attr-defined]  # the interpreter's own order at exit
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(status)


def wait_child(pid: int, timeout: float | None, kill: bool) -> int | None:
    """The child's exit status (``-N`` when signal N ended it, as :class:`subprocess.Popen` says);
    None when it still runs after ``timeout`` seconds (0: a poll; None: no limit), killed if ``kill``."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if deadline is not None and time.monotonic() >= deadline:
            if kill:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            return None
        time.sleep(0.01)


def serve() -> None:
    """The server's loop: import :data:`PRELOAD`, then answer ``start`` (fork a child: its pid) and
    ``wait`` (a child's exit status, or None) requests, one at a time."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    channel_in, channel_out = sys.stdin, sys.stdout
    print(json.dumps({"ready": os.getpid()}), file=channel_out, flush=True)
    for line in channel_in:
        request = json.loads(line)
        if request["op"] == "start":
            pid = os.fork()
            if pid == 0:
                run_child(request)
            reply: dict = {"pid": pid}
        else:
            reply = {"returncode": wait_child(request["pid"], request["timeout"], request["kill"])}
        print(json.dumps(reply), file=channel_out, flush=True)


def path_entries(value: str | None) -> list[str]:
    return [entry for entry in (value or "").split(os.pathsep) if entry]


class CommandForkServer:
    """The client side: one server per pytest worker process, started on first use."""

    _instance: CommandForkServer | None = None

    def __init__(self) -> None:
        folder = str(Path(__file__).resolve().parent)
        # ``-c`` puts '' (the working folder) first: the server's path holds only what every command's has.
        code = f"import sys; sys.path[0] = {folder!r}; import command_fork; sys.path.pop(0); command_fork.serve()"
        self.env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONSOLE": "off"}
        self.process = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=self.env
        )
        if not self.ask_raw(None):
            raise RuntimeError(f"the command fork server did not start (exit status {self.process.wait()})")

    @classmethod
    def get(cls) -> CommandForkServer:
        if cls._instance is None or cls._instance.process.poll() is not None:
            cls._instance = cls()
        return cls._instance

    @staticmethod
    def path_first(env: Mapping[str, str]) -> list[str] | None:
        """The folders ``env``'s ``PYTHONPATH`` puts before this process's own; None when a forked
        child cannot have the path a fresh interpreter would get from ``env`` (another tail, another
        ``PYTHONHOME``, a folder holding a ``catvae`` package) or fresh processes were asked for."""
        if os.environ.get("CATVAE_TEST_FRESH_PROCESSES") == "1" or env.get("PYTHONHOME") != os.environ.get("PYTHONHOME"):
            return None
        mine, theirs = path_entries(os.environ.get("PYTHONPATH")), path_entries(env.get("PYTHONPATH"))
        first = theirs[: len(theirs) - len(mine)]
        if theirs[len(first) :] != mine or any((Path(folder) / "catvae").exists() for folder in first):
            return None
        return first

    @classmethod
    def serves(cls, env: Mapping[str, str], cwd: str | Path | None = None) -> bool:
        """Whether a command in ``env``, started in ``cwd``, can be forked: :meth:`path_first`, and no
        ``catvae`` package in ``cwd`` (``-m`` puts it first: a fresh interpreter would import that one)."""
        return cls.path_first(env) is not None and not (cwd is not None and (Path(cwd) / "catvae").exists())

    def ask_raw(self, request: dict | None) -> dict:
        assert self.process.stdin is not None and self.process.stdout is not None
        if request is not None:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        line = self.process.stdout.readline()
        return json.loads(line) if line else {}

    def start(self, module: str, args: list[str], env: Mapping[str, str], cwd: str, merge_stderr: bool = False) -> ForkedProcess:
        """Start ``python -m MODULE ARGS`` in a forked child: a :class:`ForkedProcess`."""
        first = self.path_first(env)
        assert first is not None, "not a command this server can fork (CommandForkServer.serves)"
        folder = tempfile.mkdtemp(prefix="catvae-fork-")
        stdout = Path(folder) / "stdout"
        stderr = stdout if merge_stderr else Path(folder) / "stderr"
        stdout.touch()
        stderr.touch()
        request = {"op": "start", "module": module, "args": list(args), "env": dict(env), "cwd": cwd}
        request |= {"stdout": str(stdout), "stderr": str(stderr), "path_first": first}
        pid = self.ask_raw(request)["pid"]
        return ForkedProcess(self, pid, [sys.executable, "-m", module, *args], folder, stdout, None if merge_stderr else stderr)

    def run(self, module: str, args: list[str], env: Mapping[str, str], cwd: str, timeout: float) -> subprocess.CompletedProcess:
        """``python -m MODULE ARGS`` in a forked child, to its end: like :func:`subprocess.run` with
        ``capture_output=True, text=True`` (and its ``TimeoutExpired``, the child killed)."""
        process = self.start(module, args, env, cwd)
        returncode = self.ask_raw({"op": "wait", "pid": process.pid, "timeout": timeout, "kill": True})["returncode"]
        out, err = process.take_output()
        if returncode is None:
            raise subprocess.TimeoutExpired(process.args, timeout, output=out, stderr=err)
        return subprocess.CompletedProcess(process.args, returncode, out, err)


class ForkedProcess:
    """What the tests use of :class:`subprocess.Popen` (``pid``, ``returncode``, ``poll``, ``wait``,
    ``send_signal``, ``kill``, ``communicate``, ``stdout``/``stderr`` read once it ended) for a child
    of the fork server; its output goes to files, read when it has ended."""

    def __init__(self, server: CommandForkServer, pid: int, args: list[str], folder: str, stdout: Path, stderr: Path | None):
        self.server, self.pid, self.args, self.folder = server, pid, args, folder
        self.stdout_path, self.stderr_path = stdout, stderr
        self.returncode: int | None = None
        self.stdout: io.StringIO | None = None
        self.stderr: io.StringIO | None = None

    def poll(self) -> int | None:
        return self._wait(0)

    def wait(self, timeout: float | None = None) -> int:
        code = self._wait(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return code

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[str, str | None]:
        self.wait(timeout)
        assert self.stdout is not None
        return self.stdout.getvalue(), None if self.stderr is None else self.stderr.getvalue()

    def take_output(self) -> tuple[str, str | None]:
        """The child's stdout and stderr (None when merged into stdout); its files removed."""
        out = self.stdout_path.read_text(errors="replace")
        err = None if self.stderr_path is None else self.stderr_path.read_text(errors="replace")
        shutil.rmtree(self.folder, ignore_errors=True)
        return out, err

    def _wait(self, timeout: float | None) -> int | None:
        if self.returncode is None:
            code = self.server.ask_raw({"op": "wait", "pid": self.pid, "timeout": timeout, "kill": False})["returncode"]
            if code is not None:
                self.returncode = code
                out, err = self.take_output()
                self.stdout, self.stderr = io.StringIO(out), None if err is None else io.StringIO(err)
        return self.returncode
