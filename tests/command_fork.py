"""Commands started from an interpreter that has already imported catvae: a fork server for the tests.

A command's process spends ≈ 5 s of this project's 2-core CPU importing torch, Lightning, torchmetrics,
Hydra and W&B before it reads its first argument, and the suite starts about a hundred of them. The
server is one interpreter per pytest worker that imports those libraries once and then only forks:
each :func:`helpers.run_command` becomes a real child process (its own pid, environment, working
folder, stdout/stderr, exit status, signals and ``atexit`` handlers) that runs ``python -m
catvae.<module> ARGS`` through :func:`runpy.run_module`, as the interpreter's ``-m`` does.

The server never runs a torch operation, starts a thread or imports W&B, so what it hands a child
is what a fresh interpreter would have after its imports (no OpenMP pool, no service connection).
What a fork cannot give, the client does not ask of it: a command whose ``PYTHONPATH`` differs from
the server's (a ``sitecustomize`` hook, the checkout put first) runs as a fresh interpreter, and so
does every command when ``CATVAE_TEST_FRESH_PROCESSES=1``.

Protocol: one JSON request per line on the server's stdin, one JSON reply per line on its stdout.
"""

from __future__ import annotations

import json
import os
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
    import runpy
    import threading
    import traceback

    status = 1
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(out, fd)
            os.close(out)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        signal.signal(signal.SIGINT, signal.default_int_handler)
        module, args = request["module"], request["args"]
        sys.modules.pop(module, None)  # executed anew as __main__, as ``-m`` does
        sys.path[0] = os.getcwd()  # ``-m`` puts the working folder first
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
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(status)


def wait_child(pid: int, timeout: float) -> int | None:
    """The child's exit status (``-N`` when signal N ended it, as :class:`subprocess.Popen` says);
    None when it ran past ``timeout`` (then it is killed)."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(0.01)


def serve() -> None:
    """The server's loop: import :data:`PRELOAD`, then fork one child per request, one at a time."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    channel_in, channel_out = sys.stdin, sys.stdout
    print(json.dumps({"ready": os.getpid()}), file=channel_out, flush=True)
    for line in channel_in:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            run_child(request)
        returncode = wait_child(pid, request["timeout"])
        print(json.dumps({"returncode": returncode}), file=channel_out, flush=True)


class CommandForkServer:
    """The client side: one server per pytest worker process, started on first use."""

    _instance: CommandForkServer | None = None

    def __init__(self) -> None:
        folder = str(Path(__file__).resolve().parent)
        code = f"import sys; sys.path.insert(0, {folder!r}); import command_fork; sys.path.pop(0); command_fork.serve()"
        self.env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONSOLE": "off"}
        self.process = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=self.env
        )
        assert self.process.stdout is not None
        ready = self.process.stdout.readline()
        if not ready:
            raise RuntimeError(f"the command fork server did not start (exit status {self.process.wait()})")

    @classmethod
    def get(cls) -> CommandForkServer:
        if cls._instance is None or cls._instance.process.poll() is not None:
            cls._instance = cls()
        return cls._instance

    @staticmethod
    def serves(env: Mapping[str, str]) -> bool:
        """Whether a command in ``env`` can be forked: the import path a fresh interpreter would get
        from ``env`` is the server's own, and fresh processes were not asked for."""
        if os.environ.get("CATVAE_TEST_FRESH_PROCESSES") == "1":
            return False
        return env.get("PYTHONPATH") == os.environ.get("PYTHONPATH") and env.get("PYTHONHOME") == os.environ.get("PYTHONHOME")

    def run(
        self, module: str, args: list[str], env: Mapping[str, str], cwd: str, timeout: float
    ) -> subprocess.CompletedProcess:
        """``python -m MODULE ARGS`` in a forked child, to its end: like :func:`subprocess.run` with
        ``capture_output=True, text=True`` (and its ``TimeoutExpired``)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        with tempfile.TemporaryDirectory(prefix="catvae-fork-") as folder:
            stdout, stderr = Path(folder) / "stdout", Path(folder) / "stderr"
            request = {
                "module": module,
                "args": list(args),
                "env": dict(env),
                "cwd": cwd,
                "stdout": str(stdout),
                "stderr": str(stderr),
                "timeout": timeout,
            }
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            reply = json.loads(self.process.stdout.readline())
            out = stdout.read_text(errors="replace") if stdout.exists() else ""
            err = stderr.read_text(errors="replace") if stderr.exists() else ""
        command = [sys.executable, "-m", module, *args]
        if reply["returncode"] is None:
            raise subprocess.TimeoutExpired(command, timeout, output=out, stderr=err)
        return subprocess.CompletedProcess(command, reply["returncode"], out, err)
