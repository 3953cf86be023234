"""Shared fixtures: configs composed in-process and shrunk, and one tiny trained pipeline."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from catvae.config.registry import CONF_DIR

# Tests never talk to the W&B servers: every run is written offline and read back from disk.
os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_CONSOLE="off")

# A pipeline small enough for the suite: 1,200 training images, one epoch per stage.
TINY = [
    "data.limit_train=1200",
    "data.limit_test=300",
    "data.val_size=200",
    "vae.epochs=1",
    "classifier.epochs=1",
    "judge.epochs=1",
    "eval.samples_per_label=12",
    "eval.grid_per_label=4",
    "latent_dim=4",
    "trainer.enable_progress_bar=false",
]


def compose_config(name: str, overrides: list[str], log_dir: Path) -> DictConfig:
    """Compose ``conf/{name}.yaml`` with overrides, its outputs under ``log_dir``."""
    with initialize_config_dir(config_dir=CONF_DIR):
        return compose(name, overrides=[f"paths.log_dir={log_dir}", f"paths.output_dir={log_dir}/run", *overrides])


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
    cfg = compose_config("train", TINY, log_dir)
    summary = Path(train(cfg))
    return {"cfg": cfg, "summary": summary, "log_dir": log_dir}


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
