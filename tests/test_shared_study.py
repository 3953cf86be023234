"""One Optuna study shared by concurrent sweep processes on a real PostgreSQL server (issue 9):
the throw-away server, processes started together on an empty database (or SQLite file), and the
load test reduced to 2 processes and 20 trials."""

import json
import subprocess
import tempfile
from pathlib import Path

import bench_study
import optuna
import psycopg
import pytest
from conftest import PG_SCRIPT
from helpers import start_command
from omegaconf import OmegaConf
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from test_search import TINY_EVAL, search, sweep_dir

from catvae.config.callbacks import ResumeStudy
from catvae.core.errors import ConfigError
from catvae.sweep import storage as study_storage

# Cheap jobs: 4 samples per label, no sample metrics, the best re-scored once on 6.
CHEAP = ["search.trial_samples_per_label=4", "search.rescore_top=1", "eval.sample_metrics=[]", "eval.cas=false"]


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def test_postgres_script_stops_only_its_own_server(postgres_server):
    folder = tempfile.mkdtemp(prefix="catvae-pg-")
    try:
        started = subprocess.run(["bash", str(PG_SCRIPT), "start", folder], capture_output=True, text=True, check=True)
        url = started.stdout.strip()
        assert Path(folder, "url").read_text().strip() == url and make_url(url).port != make_url(postgres_server).port
        with psycopg.connect(libpq(url)) as connection:
            assert connection.execute("SELECT current_user").fetchone() == (make_url(url).username,)
        # A second start into the same folder is refused: a cluster is never reused.
        again = subprocess.run(["bash", str(PG_SCRIPT), "start", folder], capture_output=True, text=True)
        assert again.returncode == 1 and "is not empty" in again.stderr
        subprocess.run(["bash", str(PG_SCRIPT), "stop", folder], capture_output=True, text=True, check=True)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(libpq(url), connect_timeout=5)
    finally:
        subprocess.run(["rm", "-rf", folder], check=False)
    # The session's server still answers.
    with psycopg.connect(libpq(postgres_server)) as connection:
        assert connection.execute("SELECT 1 + 1").fetchone() == (2,)


def test_a_lost_creation_race_is_tried_again_then_gives_up():
    waits: list[float] = []
    calls = iter(
        [IntegrityError("INSERT", {}, Exception("duplicate key")), OperationalError("x", {}, Exception("database is locked"))]
    )

    def step() -> str:
        error = next(calls, None)
        if error is not None:
            raise error
        return "created"

    assert study_storage.retried(step, "test", sleep=waits.append) == "created"
    assert len(waits) == 2 and 0.025 <= waits[0] <= 0.075 and 0.05 <= waits[1] <= 0.15  # 0.05·2^k, ±50 %
    waits.clear()
    with pytest.raises(IntegrityError):
        study_storage.retried(lambda: (_ for _ in ()).throw(IntegrityError("x", {}, Exception("dup"))), "test", 4, waits.append)
    assert len(waits) == 3 and max(waits) <= study_storage.MAX_WAIT_S * 1.5


@pytest.mark.slow
def test_a_storage_that_cannot_be_opened_ends_the_sweep_with_its_key(monkeypatch, capsys):
    waits: list[float] = []
    monkeypatch.setattr(study_storage.time, "sleep", waits.append)  # the back-off, not waited here
    url = "postgresql+psycopg://someone:secret@127.0.0.1:1/nowhere"
    with pytest.raises(ConfigError) as error:
        study_storage.open_storage(url)
    assert len(waits) == study_storage.TRIES - 1  # tried TRIES times (the patch took: retried looks sleep up late)
    assert error.value.key == "search.storage_url" and "secret" not in str(error.value) and "***" in str(error.value)
    config = OmegaConf.create({"hydra": {"sweeper": {"storage": url, "study_name": "s", "direction": "minimize"}}})
    with pytest.raises(SystemExit) as status:  # not a warning Hydra would swallow: the sweep stops, exit 2
        ResumeStudy().on_multirun_start(config)
    assert status.value.code == 2 and "search.storage_url=" in capsys.readouterr().err


def test_the_study_is_created_with_the_sweepers_direction(postgres_url):
    study_storage.open_study(postgres_url, "d", ["minimize"])
    assert [d.name for d in optuna.load_study(study_name="d", storage=postgres_url).directions] == ["MINIMIZE"]
    with pytest.raises(ConfigError, match=r"hydra\.sweeper\.direction='maximize'.*existing study d.*minimize"):
        study_storage.open_study(postgres_url, "d", ["maximize"])


def started_together(log_dir: Path, storage: str, processes: int = 4, trials: int = 2) -> list[Path]:
    procs = [
        search(
            log_dir,
            "search=optuna",
            f"search.storage_url={storage}",
            "hydra.sweeper.study_name=together",
            f"hydra.sweeper.n_trials={trials}",
            f"search.sampler_seed={seed}",
            "logger=none",
            *CHEAP,
            background=True,
        )
        for seed in range(processes)
    ]
    folders = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        assert "Traceback" not in err and "raised" not in err, err[-3000:]  # no race lost, not even in a callback
        folders.append(sweep_dir(subprocess.CompletedProcess([], 0, out, err)))
    return folders


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_processes_started_together_on_an_empty_database_join_one_study(trained, backend, request, tmp_path):
    storage = request.getfixturevalue("postgres_url") if backend == "postgresql" else f"sqlite:///{tmp_path / 'new.db'}"
    folders = started_together(trained["log_dir"], storage)
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name="together", storage=storage)
    assert summary.study_name == "together" and [t.state.name for t in study.trials] == ["COMPLETE"] * 8
    recorded = sorted(json.loads((f / str(j) / "result.json").read_text())["optuna_trial"] for f in folders for j in (0, 1))
    assert recorded == list(range(8))  # each trial scored by exactly one job: none lost, none twice


def test_reduced_load_test_two_processes_twenty_trials(trained, postgres_url, monkeypatch):
    def forked(log_dir, storage, study, n_trials, seed, overrides):  # bench_study.launch, without the imports
        return start_command("search", *bench_study.search_arguments(storage, study, n_trials, seed, overrides), log_dir=log_dir)

    monkeypatch.setattr(bench_study, "launch", forked)
    row = bench_study.shared_study(
        postgres_url,
        "load",
        trials=20,
        processes=2,
        log_dir=trained["log_dir"],
        overrides=[*TINY_EVAL, *CHEAP, "logger=wandb"],
    )
    assert row["problems"] == [] and row["jobs_per_process"] == [10, 10]
    study = optuna.load_study(study_name="load", storage=postgres_url)
    assert len(study.trials) == 20 and {t.state.name for t in study.trials} == {"COMPLETE"}
    assert row["trials_per_s"] == pytest.approx(20 / row["wall_s"], rel=0.01) and row["trial_s"] > row["compute_s"] > 0
    # W&B: every job's run is in the study's group, whichever process ran it (the check the load test makes).
    from wandb_files import find_run_files, read_finished_run

    runs = [read_finished_run(p) for folder in row["sweep_folders"] for p in find_run_files(folder)]
    assert sorted(r.group for r in runs if r.job_type == "search") == ["load"] * 20
    # A broken record is caught: a job that claims another job's trial.
    jobs = [
        [json.loads(p.read_text()) | {"_dir": p.parent} for p in sorted(f.glob("*/result.json"))]
        for f in map(Path, row["sweep_folders"])
    ]
    jobs[0][0]["optuna_trial"] = jobs[1][0]["optuna_trial"]
    problems = bench_study.check(postgres_url, "load", 20, [10, 10], jobs)
    assert any("recorded by more than one job" in p for p in problems)


def test_split_shares_trials_evenly():
    assert bench_study.split(200, 4) == [50] * 4 and bench_study.split(20, 3) == [7, 7, 6] and sum(bench_study.split(7, 7)) == 7
