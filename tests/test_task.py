"""The task wrapper every command runs in: loggers always closed with the job's status, user errors
→ one message and exit status 2, bugs → their traceback and then the run folder."""

import os
import subprocess
import sys
import traceback

import pytest
from helpers import command_env
from hydra.errors import InstantiationException
from omegaconf import OmegaConf

from catvae.config import task
from catvae.config.task import command_errors, run_task
from catvae.core.errors import ConfigError, MissingArtifactsError


class FakeLogger:
    """Records what the wrapper does with a logger."""

    def __init__(self):
        self.statuses: list[str] = []

    def finalize(self, status: str) -> None:
        self.statuses.append(status)


@pytest.fixture
def logger(monkeypatch) -> FakeLogger:
    """The one logger ``cfg.logger`` opens (the real close_loggers calls its finalize)."""
    fake = FakeLogger()
    monkeypatch.setattr("catvae.core.loggers.build_loggers", lambda node: [fake])
    return fake


CFG = OmegaConf.create({"logger": {"fake": {}}, "paths": {"output_dir": "/runs/train/job-7"}})


def test_loggers_are_closed_with_success(logger):
    assert run_task(CFG, lambda cfg: None, lambda loggers: (loggers, 42)) == ([logger], 42)
    assert logger.statuses == ["success"]


def test_loggers_are_closed_when_the_body_raises_and_the_bug_names_the_run_folder(logger):
    def body(loggers):
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError) as caught:
        run_task(CFG, lambda cfg: None, body)
    assert logger.statuses == ["failed"]
    printed = "".join(traceback.format_exception(caught.value)).rstrip().splitlines()
    assert printed[0] == "Traceback (most recent call last):"
    assert printed[-2:] == ["ZeroDivisionError: a bug", "run folder (config and logs): /runs/train/job-7"]


@pytest.mark.parametrize(
    "error",
    [
        ConfigError("vae.lr", -1.0, "a number > 0"),
        InstantiationException("Error in call to target"),
        MissingArtifactsError("no trained artifacts for data=mnist"),
    ],
)
def test_a_user_error_exits_2_with_one_message_and_closes_the_loggers(logger, capsys, error):
    if isinstance(error, InstantiationException):  # what hydra.utils.instantiate raises around a target's error
        error.__cause__ = ConfigError("data.root", None, "a folder")

    def body(loggers):
        raise error

    with pytest.raises(SystemExit) as caught:
        run_task(CFG, lambda cfg: None, body)
    assert caught.value.code == 2 and logger.statuses == ["failed"]
    expected = {
        ConfigError: "vae.lr=-1.0 is not allowed: a number > 0",
        InstantiationException: "data.root=None is not allowed: a folder",
        MissingArtifactsError: "no trained artifacts for data=mnist",
    }[type(error)]
    assert capsys.readouterr().err == f"error: {expected}\n"


def test_an_instantiation_error_around_a_bug_stays_a_bug(logger):
    error = InstantiationException("Error in call to target 'x'")
    error.__cause__ = TypeError("x() got an unexpected keyword argument")

    def body(loggers):
        raise error

    with pytest.raises(InstantiationException):
        run_task(CFG, lambda cfg: None, body)
    assert logger.statuses == ["failed"]


def test_a_refused_config_opens_no_logger(monkeypatch, capsys):
    monkeypatch.setattr("catvae.core.loggers.build_loggers", lambda node: pytest.fail("opened a logger"))

    def validate(cfg):
        raise ConfigError("latent_dim", 0, "an integer >= 1")

    with pytest.raises(SystemExit) as caught:
        run_task(CFG, validate, lambda loggers: pytest.fail("ran the body"))
    assert caught.value.code == 2
    assert capsys.readouterr().err == "error: latent_dim=0 is not allowed: an integer >= 1\n"


def test_a_config_without_loggers_imports_no_logger_module():
    assert task.open_loggers(OmegaConf.create({"paths": {}})) == []
    assert task.open_loggers(OmegaConf.create({"logger": {}})) == []


def test_wandb_runs_are_finished_so_multirun_jobs_stay_apart(monkeypatch):
    """close_loggers finishes the W&B run with the job's exit code."""
    from pytorch_lightning.loggers import WandbLogger

    from catvae.core.loggers import close_loggers

    finished = []

    class Run:
        def finish(self, exit_code):
            finished.append(exit_code)

    wandb = WandbLogger.__new__(WandbLogger)
    wandb._experiment = Run()
    monkeypatch.setattr(WandbLogger, "experiment", property(lambda self: self._experiment))
    monkeypatch.setattr(WandbLogger, "finalize", lambda self, status: finished.append(status))
    close_loggers([wandb], "success")
    close_loggers([wandb], "failed")
    assert finished == ["success", 0, "failed", 1]


def test_command_errors_maps_user_errors_and_lets_bugs_through(capsys):
    with pytest.raises(SystemExit) as caught, command_errors():
        raise ConfigError("--trials", 0, "an integer >= 1")
    assert caught.value.code == 2 and capsys.readouterr().err == "error: --trials=0 is not allowed: an integer >= 1\n"
    with pytest.raises(KeyError), command_errors():
        raise KeyError("a bug")


@pytest.mark.subprocess
def test_a_bug_in_a_command_shows_its_traceback_then_the_run_folder(tmp_path):
    """A real command (Hydra composing generate.yaml) whose job has a bug: exit status 1, the
    traceback, and as the last line the run folder holding its config and logs."""
    script = tmp_path / "buggy.py"
    script.write_text(
        "from catvae.config.task import hydra_command, run_task\n"
        "@hydra_command('generate')\n"
        "def main(cfg):\n"
        "    return run_task(cfg, lambda cfg: None, lambda loggers: 1 / 0)\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, str(script), "latent_dim=3"],
        capture_output=True,
        text=True,
        env=command_env(tmp_path / "logs"),
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 1
    lines = result.stderr.rstrip().splitlines()
    assert "Traceback (most recent call last):" in lines and lines[-2] == "ZeroDivisionError: division by zero"
    run_folder = lines[-1].removeprefix("run folder (config and logs): ")
    assert run_folder.startswith(str(tmp_path / "logs" / "generate" / "runs" / "mnist-elbo-3-labelall_"))
    assert (tmp_path / "logs" / "generate" / "runs" / os.path.basename(run_folder) / ".hydra" / "config.yaml").is_file()
