"""The tests' fork server (tests/command_fork.py) gives a command what a fresh interpreter would."""

import subprocess

import pytest
from command_fork import CommandForkServer
from helpers import command_env

PROBE = """
import json, os, sys
from wandb.sdk.data_types._private import MEDIA_TMP
print(json.dumps({"cwd": os.getcwd(), "argv": sys.argv[1:], "marker": os.environ.get("PROBE_MARKER"),
                  "path0": sys.path[0], "main": __name__, "media": os.path.isdir(MEDIA_TMP.name)}))
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
    assert seen == {"cwd": str(probe), "argv": ["3", "x=1"], "marker": "here", "path0": str(probe), "main": "__main__", "media": True}
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


def test_another_import_path_gets_a_fresh_interpreter():
    assert CommandForkServer.serves(command_env())
    assert not CommandForkServer.serves(command_env(pythonpath=["/somewhere"]))
    assert not CommandForkServer.serves(command_env(checkout_first=True))
