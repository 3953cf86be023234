"""The tests' fork server (tests/command_fork.py) gives a command what a fresh interpreter would."""

import subprocess
import sys

import pytest
from command_fork import CommandForkServer
from helpers import command_env

PROBE = """
import json, os, sys
from wandb.sdk.data_types._private import MEDIA_TMP
print(json.dumps({"cwd": os.getcwd(), "argv": sys.argv[1:], "marker": os.environ.get("PROBE_MARKER"),
                  "path": sys.path, "main": __name__, "media": os.path.isdir(MEDIA_TMP.name)}))
print("to stderr", file=sys.stderr)
if sys.argv[1:] == ["crash"]:
    raise RuntimeError("probe crashed")
sys.exit(int(sys.argv[1]) if sys.argv[1:] and sys.argv[1].isdigit() else None)
"""


@pytest.fixture
def probe(tmp_path):
    (tmp_path / "probe.py").write_text(PROBE)
    return tmp_path


def forked(folder, *args, timeout=60):
    env = command_env(extra={"PROBE_MARKER": "here"})
    return CommandForkServer.get().run("probe", list(args), env, str(folder), timeout)


def test_a_forked_command_gets_its_folder_arguments_environment_and_exit_status(probe):
    import json

    done = forked(probe, "3", "x=1")
    assert done.returncode == 3 and done.stderr == "to stderr\n"
    seen = json.loads(done.stdout)
    fresh = subprocess.run(
        [sys.executable, "-m", "probe", "3", "x=1"],
        cwd=probe,
        env=command_env(extra={"PROBE_MARKER": "here"}),
        capture_output=True,
        text=True,
    )
    assert fresh.returncode == 3 and json.loads(fresh.stdout) == seen  # the path too: the folder, then what site gives
    assert seen.pop("path")[0] == str(probe)
    assert seen == {
        "cwd": str(probe),
        "argv": ["3", "x=1"],
        "marker": "here",
        "main": "__main__",
        "media": True,
    }
    assert forked(probe).returncode == 0
    crashed = forked(probe, "crash")
    assert crashed.returncode == 1 and "RuntimeError: probe crashed" in crashed.stderr and "Traceback" in crashed.stderr


def test_each_child_imports_wandb_afresh(probe):
    """W&B's import makes a temporary media folder and deletes it at exit: the server must not import
    W&B, or the first child to exit takes the folder from every later one (the bug this guards)."""
    import json

    for _ in range(2):
        assert json.loads(forked(probe).stdout)["media"] is True


def test_a_command_past_its_timeout_is_killed(tmp_path):
    (tmp_path / "sleeper.py").write_text("import time\nprint('started', flush=True)\ntime.sleep(60)\n")
    with pytest.raises(subprocess.TimeoutExpired) as expired:
        CommandForkServer.get().run("sleeper", [], command_env(), str(tmp_path), timeout=1)
    assert expired.value.output == "started\n"


def test_a_path_that_would_import_another_catvae_gets_a_fresh_interpreter(tmp_path):
    assert CommandForkServer.path_first(command_env()) == []
    assert CommandForkServer.path_first(command_env(pythonpath=[tmp_path])) == [str(tmp_path)]
    (tmp_path / "catvae").mkdir()
    assert not CommandForkServer.serves(command_env(pythonpath=[tmp_path]))
    assert not CommandForkServer.serves(command_env(checkout_first=True))  # the checkout's catvae, not the installed one
    assert not CommandForkServer.serves(command_env(extra={"PYTHONHOME": "/elsewhere"}))
    assert not CommandForkServer.serves(command_env(), tmp_path)  # -m would import ./catvae first


def test_a_background_child_is_polled_waited_and_killed_like_a_popen(tmp_path):
    import signal
    import time

    (tmp_path / "sleeper.py").write_text(
        "import sys, time\nprint('out', flush=True)\nprint('err', file=sys.stderr, flush=True)\ntime.sleep(60)\n"
    )
    server = CommandForkServer.get()
    process = server.start("sleeper", [], command_env(), str(tmp_path), merge_stderr=True)
    assert process.poll() is None and process.pid > 0
    with pytest.raises(subprocess.TimeoutExpired):
        process.wait(timeout=0.2)
    deadline = time.monotonic() + 30
    while "err" not in process.stdout_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    output, err = process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL and output == "out\nerr\n" and err is None


def test_a_sitecustomize_first_on_the_path_runs_before_the_command(tmp_path):
    import json

    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text("import builtins\nbuiltins.HOOKED = True\n")
    (tmp_path / "probe.py").write_text(
        "import builtins, json, sys\nprint(json.dumps([getattr(builtins, 'HOOKED', False), sys.path[1]]))\n"
    )
    env = command_env(pythonpath=[hook])
    assert CommandForkServer.path_first(env) == [str(hook)]
    done = CommandForkServer.get().run("probe", [], env, str(tmp_path), timeout=60)
    assert json.loads(done.stdout) == [True, str(hook)]
