"""Generator search as Hydra multiruns (grid and Optuna) on the tiny trained pipeline, from the command line."""

import csv
import json
import subprocess
from pathlib import Path

import optuna
import pytest
from helpers import run_command, start_command
from wandb_files import find_run_files, read_finished_run

from catvae.sweep.report import report

pytestmark = pytest.mark.subprocess  # every test here runs `python -m catvae.search -m`

# The trained fixture's data (its real test and training images are what the judge compares samples with).
TINY_EVAL = ["latent_dim=4", "eval.samples_per_label=6", "data.limit_train=1200", "data.limit_test=300", "data.val_size=200"]


def search(log_dir: Path, *overrides: str, check: bool = True, background: bool = False):
    """``python -m catvae.search -m`` on the tiny pipeline's data; without W&B (``logger=none``) unless
    the overrides name a logger: a test that reads the W&B runs asks for ``logger=wandb``."""
    quiet = [] if any(o.startswith("logger=") for o in overrides) else ["logger=none"]
    args = ["-m", *TINY_EVAL, *quiet, *overrides]
    if background:
        return start_command("search", *args, log_dir=log_dir)
    result = run_command("search", *args, log_dir=log_dir)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def sweep_dir(result: subprocess.CompletedProcess) -> Path:
    return Path(result.stdout.strip().splitlines()[-1].removeprefix("sweep summary: "))


@pytest.fixture(scope="module")
def grid(trained):
    result = search(trained["log_dir"], "generator.theta=0.2,0.9", "generator.n=1", "logger=wandb")
    return sweep_dir(result)


def test_grid_writes_trials_exactly_as_the_jobs_logged(grid):
    with open(grid / "trials.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["theta"], row["n"]) for row in rows] == [("0.2", "1"), ("0.9", "1")]
    for row in rows:
        job = json.loads((grid / row["job"] / "result.json").read_text())
        assert float(row["objective"]) == job["objective"] == pytest.approx(job["cos_pairwise"] + 1 - job["accuracy"])
        assert float(row["accuracy"]) == job["accuracy"] and float(row["cos_to_mean"]) == job["cos_to_mean"]
    best = json.loads((grid / "best.json").read_text())
    assert best["objective"] == min(float(row["objective"]) for row in rows)
    assert (grid / "figure1.png").stat().st_size > 10_000


def test_grid_wandb_runs_carry_the_objective(grid):
    runs = [read_finished_run(path) for path in find_run_files(grid)]
    jobs = sorted((r for r in runs if r.job_type == "search"), key=lambda r: r.name)
    assert len(jobs) == 2 and {r.group for r in runs} == {grid.name}
    for job_number, run in enumerate(jobs):
        result = json.loads((grid / str(job_number) / "result.json").read_text())
        assert run.summary["objective"] == pytest.approx(result["objective"])
        assert run.config["generator"]["theta"] == result["theta"] and "theta_eff" in run.config["generator"]
    (summary,) = [r for r in runs if r.job_type == "sweep-summary"]
    assert summary.summary["best/objective"] == pytest.approx(json.loads((grid / "best.json").read_text())["objective"])


def test_optuna_resumes_from_storage_and_shares_a_study(trained, tmp_path):
    log_dir = trained["log_dir"]
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    args = ["generator=medium1", "search=optuna", f"search.storage_url={storage}", "hydra.sweeper.study_name=t"]
    first = search(log_dir, *args, "hydra.sweeper.n_trials=3", "search.sampler_seed=1")
    assert len(optuna.load_study(study_name="t", storage=storage).trials) == 3
    # A second invocation (a resumed, killed sweep) adds to the same study…
    search(log_dir, *args, "hydra.sweeper.n_trials=2", "search.sampler_seed=2")
    assert len(optuna.load_study(study_name="t", storage=storage).trials) == 5
    # …and two processes at once both add theirs.
    procs = [search(log_dir, *args, "hydra.sweeper.n_trials=2", f"search.sampler_seed={s}", background=True) for s in (3, 4)]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read()[-3000:]
    study = optuna.load_study(study_name="t", storage=storage)
    assert len([t for t in study.trials if t.state.name == "COMPLETE"]) == 9
    assert {f"+generator.theta.{d}" for d in range(4)} | {"generator.n"} == set(study.trials[0].params)
    # The first sweep's best.json holds θ in full, as the search record that generate can use.
    best = json.loads((sweep_dir(first) / "best.json").read_text())
    assert len(best["theta"]) == 4 and best["config"]["theta"] == best["theta"]


def test_generate_from_search_best_and_report(trained, grid, tmp_path, make_config):
    from catvae.generate import generate

    folder = trained["log_dir"] / "search" / "best" / "mnist" / "elbo-4" / "seed0"
    recorded = json.loads((folder / "diag-simple.json").read_text())
    cfg = make_config(
        "generate",
        ["latent_dim=4", "label=1", "num=4", "generator.from_search=best", f"out={tmp_path / 'best.npz'}"],
        log_dir=trained["log_dir"],
    )
    generate(cfg)
    assert (tmp_path / "best.npz").is_file() and recorded["theta"] in (0.2, 0.9)
    written = report([grid], tmp_path / "report")
    table = written["table"].read_text()
    assert "| ELBO-4 | Simple |" in table and f"{recorded['objective']:.4f}" in table
    assert written["figure"].stat().st_size > 10_000


def test_optuna_trials_on_fewer_samples_are_rescored(trained, tmp_path):
    storage = f"sqlite:///{tmp_path / 'rescore.db'}"
    result = search(
        trained["log_dir"],
        "search=optuna",
        f"search.storage_url={storage}",
        "hydra.sweeper.study_name=r",
        "hydra.sweeper.n_trials=3",
        "search.sampler_seed=5",
        "eval.samples_per_label=8",
        "search.trial_samples_per_label=4",
        "search.rescore_top=2",
        "logger=none",
    )
    folder = sweep_dir(result)
    jobs = {str(i): json.loads((folder / str(i) / "result.json").read_text()) for i in range(3)}
    assert {job["samples_per_label"] for job in jobs.values()} == {4}
    best = json.loads((folder / "best.json").read_text())
    assert best["eval"]["samples_per_label"] == 8 and best["trial"]["samples_per_label"] == 4
    assert best["trial"]["objective"] == jobs[best["job"]]["objective"]
    # The two best trials by their 4-sample objective were scored again; the best of those wins.
    two_best = sorted(jobs, key=lambda j: jobs[j]["objective"])[:2]
    assert sorted(r["job"] for r in best["rescored"]) == sorted(two_best)
    assert best["objective"] == min(r["objective"] for r in best["rescored"])
    assert best["objective"] == pytest.approx(best["cos_pairwise"] + 1 - best["accuracy"])
