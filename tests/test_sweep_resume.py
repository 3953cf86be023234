"""Killed sweeps: a grid re-run into its folder skips the jobs that finished; a resumed Optuna study
fails the trials a dead process left RUNNING, and its jobs never reuse an earlier sweep's folder."""

import json
import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState
from test_search import search, sweep_dir
from wandb_files import find_run_files, read_finished_run

from catvae.config import callbacks
from catvae.search import score
from catvae.sweep import trials
from catvae.sweep.scoring import RESULT_FILE


def search_runs(folder) -> list:
    return sorted(r.name for r in map(read_finished_run, find_run_files(folder)) if r.job_type == "search")


def test_a_grid_rerun_into_its_folder_skips_the_finished_jobs(trained, tmp_path):
    args = ["generator.theta=0.2,0.5,0.9", "generator.n=1", f"hydra.sweep.dir={tmp_path / 'sweep'}", "logger=wandb"]
    folder = sweep_dir(search(trained["log_dir"], *args))
    finished = {job: (folder / job / RESULT_FILE).read_bytes() for job in ("0", "1")}
    # As if killed while job 2 ran, before the summary.
    lost = json.loads((folder / "2" / RESULT_FILE).read_text())
    for name in ("2/result.json", "trials.csv", "best.json", "figure1.png"):
        (folder / name).unlink()
    runs_before = search_runs(folder)
    assert len(runs_before) == 3

    rerun = search(trained["log_dir"], *args)
    assert sweep_dir(rerun) == folder and rerun.stdout.count("(recorded in") == 2
    assert {job: (folder / job / RESULT_FILE).read_bytes() for job in ("0", "1")} == finished  # not rewritten
    again = json.loads((folder / "2" / RESULT_FILE).read_text())
    assert again["objective"] == lost["objective"] and again["request"] == lost["request"]
    # Only job 2 opened a W&B run the second time.
    assert len(search_runs(folder)) == 4 and search_runs(folder).count(runs_before[2]) == 2
    rows = (folder / "trials.csv").read_text().splitlines()
    assert [row.split(",")[:4] for row in rows[1:]] == [
        ["0", "simple", "diag", "0.2"],
        ["1", "simple", "diag", "0.5"],
        ["2", "simple", "diag", "0.9"],
    ]
    assert json.loads((folder / "best.json").read_text())["objective"] == min(
        json.loads((folder / job / RESULT_FILE).read_text())["objective"] for job in "012"
    )


def test_a_job_reuses_only_a_result_for_the_same_request(trained, make_config, tmp_path, monkeypatch):
    from catvae.artifacts import fingerprint
    from catvae.evaluation import evaluator as evaluation

    def config(*overrides):
        return make_config(
            "search_job",
            [
                "latent_dim=4",
                "eval.samples_per_label=6",
                "logger=none",
                f"paths.artifacts_dir={trained['log_dir'] / 'artifacts'}",
                *overrides,
            ],
        )

    objective = score(config("generator.theta=0.3"))
    path = tmp_path / "logs" / "run" / RESULT_FILE
    written, stat = path.read_bytes(), path.stat()
    result = json.loads(written)
    models = fingerprint(trained["log_dir"] / "artifacts" / "mnist" / "elbo-4" / "seed0")
    assert result["objective"] == objective and result["request"] == {
        "key": {"data": "mnist", "vae": "elbo", "latent_dim": 4, "seed": 0},
        "models": models,
        "generator": {"_target_": "catvae.generators.gaussian.Simple", "theta": 0.3, "n": 2, "fill": 1.0, "from_search": None},
        "latent": "diag",
        "eval": {
            "samples_per_label": 6,
            "seed": 1234,
            "precision": "auto",
            "cos": "pairwise",
            "classifier": "paper",
            "sample_metrics": ["fid", "novelty"],
            "judge_seed": 0,
        },
        "device": "cpu",
    }
    scored = []
    monkeypatch.setattr(evaluation, "evaluate_generator", lambda *a, **k: scored.append(1) or pytest.fail("scored again"))
    assert score(config("generator.theta=0.3", "logger=csv")) == objective  # how it is logged is not what it scores
    assert path.read_bytes() == written and path.stat().st_mtime_ns == stat.st_mtime_ns and not scored
    monkeypatch.undo()
    for other in (["generator.theta=0.4"], ["eval.samples_per_label=8"], ["objective.cos=to_mean"], ["eval.seed=7"]):
        score(config("generator.theta=0.3", *other) if other[0] != "generator.theta=0.4" else config(*other))
        assert json.loads(path.read_text())["request"] != result["request"]
        path.write_bytes(written)


def dead_pid() -> int:
    process = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(process.stdout)


def running_trial(study: optuna.Study, owner: dict | None) -> int:
    trial = study.ask()
    if owner is not None:
        trial.set_user_attr(trials.OWNER, owner)
    return trial.number


@pytest.mark.slow
def test_stale_running_trials_are_failed_and_live_ones_kept(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=url)
    host, me = socket.gethostname(), trials.this_process()
    assert me["started"] is not None and trials.owner_alive(me) is True
    numbers = {
        "dead": running_trial(study, {"host": host, "pid": dead_pid(), "started": "1"}),
        "live": running_trial(study, me),
        "pid reused": running_trial(study, {**me, "started": str(int(me["started"]) - 1)}),
        "other host": running_trial(study, {"host": host + "-elsewhere", "pid": 1, "started": "1"}),
        "no owner": running_trial(study, None),
    }
    done = study.ask()
    study.tell(done, 0.5)

    callback = callbacks.ResumeStudy(grace_s=3600)
    callback.on_multirun_start(OmegaConf.create({"hydra": {"sweeper": {"storage": url, "study_name": "s"}}}))

    def states() -> dict:
        by_number = {t.number: t for t in optuna.load_study(study_name="s", storage=url).trials}
        return {name: by_number[n].state for name, n in numbers.items()} | {"complete": by_number[done.number].state}

    assert states() == {
        "dead": TrialState.FAIL,
        "live": TrialState.RUNNING,
        "pid reused": TrialState.FAIL,
        "other host": TrialState.RUNNING,
        "no owner": TrialState.RUNNING,
        "complete": TrialState.COMPLETE,
    }
    reasons = {t.number: t.user_attrs.get(trials.STALE) for t in optuna.load_study(study_name="s", storage=url).trials}
    assert reasons[numbers["dead"]].startswith(f"its process {host}:") and reasons[numbers["live"]] is None
    # Two hours on, the trials nobody here can check are past the grace; a live process's trial never is.
    later = datetime.now() + timedelta(hours=2)
    assert trials.fail_stale_trials(url, "s", timedelta(hours=1), now=later) == [numbers["other host"], numbers["no owner"]]
    assert states()["live"] == TrialState.RUNNING and states()["no owner"] == TrialState.FAIL
    assert trials.fail_stale_trials(url, "no such study", timedelta(hours=1)) == []


def test_a_resumed_optuna_sweep_fails_the_dead_trial_and_numbers_its_jobs(trained, tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="k", storage=url)
    killed = running_trial(study, {"host": socket.gethostname(), "pid": dead_pid(), "started": "1"})
    args = ["search=optuna", f"search.storage_url={url}", "hydra.sweeper.study_name=k", "search.sampler_seed=1", "logger=none"]
    result = search(trained["log_dir"], *args, "hydra.sweeper.n_trials=2")
    folder = sweep_dir(result)
    assert f"trials [{killed}] were left RUNNING" in result.stdout
    by_number = {t.number: t for t in optuna.load_study(study_name="k", storage=url).trials}
    assert by_number[killed].state == TrialState.FAIL
    for job, number in (("0", 1), ("1", 2)):
        recorded = json.loads((folder / job / RESULT_FILE).read_text())
        assert recorded["optuna_trial"] == number and by_number[number].state == TrialState.COMPLETE
        assert (
            by_number[number].value == recorded["objective"] and by_number[number].params["generator.theta"] == recorded["theta"]
        )
        assert by_number[number].user_attrs[trials.JOB_DIR] == str(folder / job)
        assert by_number[number].user_attrs[trials.OWNER]["host"] == socket.gethostname()

    # Re-running it into the same folder would overwrite its jobs: refused, nothing touched.
    summary = (folder / "trials.csv").read_bytes()
    refused = search(trained["log_dir"], *args, "hydra.sweeper.n_trials=1", f"hydra.sweep.dir={folder}", check=False)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith(f"error: hydra.sweep.dir='{folder}' is not allowed")
    assert (folder / "trials.csv").read_bytes() == summary and not (folder / "2").exists()
    assert len(optuna.load_study(study_name="k", storage=url).trials) == 3
    # The same command again continues the study in a folder of its own.
    second = sweep_dir(search(trained["log_dir"], *args, "hydra.sweeper.n_trials=1"))
    assert second != folder and json.loads((second / "0" / RESULT_FILE).read_text())["optuna_trial"] == 3


def test_process_start_tells_a_reused_pid_apart():
    assert trials.process_start(os.getpid()) == trials.this_process()["started"]
    assert trials.process_start(dead_pid()) is None


def test_a_result_scored_on_other_models_is_not_reused(tmp_path):
    # The request names the models now on disk; a result scored by a process that still held the
    # previous models (the key was retrained during the sweep) must be scored again.
    from catvae.sweep.jobs import finished_result

    request = {"key": {"vae": "elbo"}, "models": {"vae.pt": "new"}, "generator": {"theta": 0.3}}
    path = tmp_path / RESULT_FILE
    path.write_text(json.dumps({"request": request, "objective": 0.9, "models": {"fingerprint": {"vae.pt": "old"}}}))
    assert finished_result(path, request) is None
    path.write_text(json.dumps({"request": request, "objective": 0.9, "models": {"fingerprint": {"vae.pt": "new"}}}))
    assert finished_result(path, request)["objective"] == 0.9
