"""One summary per Optuna study shared by several processes (catvae.sweep.study)."""

import csv
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import optuna
import pytest
from optuna.storages import RDBStorage
from optuna.trial import TrialState
from test_search import search, sweep_dir
from wandb_files import find_run_files, read_finished_run

from catvae.sweep.study import (
    MEMBER,
    RESULT,
    claim_summary,
    join_study,
    leave_study,
    running_members,
    study_folder,
    study_results,
)
from catvae.sweep.trials import process_start


@pytest.fixture
def storage(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="s", storage=url)
    rdb = RDBStorage(url)
    return rdb, rdb.get_study_id_from_name("s")


def test_the_summary_is_claimed_once_per_number_of_trials(storage):
    rdb, study_id = storage
    assert claim_summary(rdb, study_id, "s", 10) is True
    assert claim_summary(rdb, study_id, "s", 10) is False  # a second process ending with the same trials
    assert claim_summary(rdb, study_id, "s", 12) is True  # the study resumed and grew: summarised again
    assert [s.study_name for s in optuna.get_all_study_summaries(rdb)] == ["s"]  # no marker left behind
    # A marker another process holds right now (it is between claiming and recording) blocks a claim.
    rdb.create_new_study([optuna.study.StudyDirection.MINIMIZE], "s :: summary at 13 trials")
    assert claim_summary(rdb, study_id, "s", 13) is False


def test_who_still_runs_a_study(storage):
    rdb, study_id = storage
    me = join_study(rdb, study_id, "/sweeps/a")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    now = datetime.now()
    members = {
        "live": {"host": os.uname().nodename, "pid": os.getppid(), "started": process_start(os.getppid())},
        "dead": {"host": os.uname().nodename, "pid": dead_pid, "started": "1"},
        "remote-recent": {"host": "elsewhere", "pid": 1, "started": "1", "since": now.isoformat()},
        "remote-silent": {"host": "elsewhere", "pid": 2, "started": "1", "since": (now - timedelta(hours=2)).isoformat()},
        "finished": {"host": os.uname().nodename, "pid": os.getppid(), "started": process_start(os.getppid()), "state": "done"},
    }
    for name, member in members.items():
        rdb.set_study_user_attr(study_id, f"{MEMBER}{name}", {"state": "running", "since": now.isoformat(), **member})
    running = running_members(rdb, study_id, me, timedelta(hours=1), now=now)
    assert sorted(running) == sorted([f"{os.uname().nodename}:{os.getppid()}", "elsewhere:1"])
    # Our own membership never holds us back, and leaving marks it done for the others.
    leave_study(rdb, study_id, me)
    assert rdb.get_study_user_attrs(study_id)[me]["state"] == "done"
    assert rdb.get_study_user_attrs(study_id)[me]["sweep_dir"] == "/sweeps/a"


def test_study_results_are_the_complete_trials_scores(storage):
    rdb, study_id = storage
    study = optuna.load_study(study_name="s", storage=rdb)
    for number, value in enumerate([0.5, 0.3, None]):
        trial = study.ask()
        if value is not None:
            trial.set_user_attr(RESULT, {"objective": value, "name": "simple"})
            study.tell(trial, value)
        assert trial.number == number
    assert study_results(rdb, study_id) == [
        {"job": "0", "objective": 0.5, "name": "simple"},
        {"job": "1", "objective": 0.3, "name": "simple"},
    ]


def test_two_processes_sharing_a_study_write_one_summary(trained, tmp_path):
    """Two sweep processes at once on one study: one W&B group (the study), every trial's scores in
    the study's storage, and one study summary with one sweep-summary W&B run, written by the
    process that finished last."""
    log_dir = tmp_path / "logs"
    (log_dir / "artifacts").parent.mkdir(parents=True)
    (log_dir / "artifacts").symlink_to(trained["log_dir"] / "artifacts")
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    args = ["generator=medium1", "search=optuna", f"search.storage_url={storage}", "hydra.sweeper.study_name=shared"]
    # Trials on 4 samples per label, the study's 2 best re-scored on 8.
    args += ["eval.samples_per_label=8", "search.trial_samples_per_label=4", "search.rescore_top=2", "logger=wandb"]
    procs = [search(log_dir, *args, "hydra.sweeper.n_trials=3", f"search.sampler_seed={s}", background=True) for s in (1, 2)]
    outputs = []
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read()[-3000:]
        outputs.append(proc.stdout.read())
    assert sum("study summary: " in out for out in outputs) == 1  # written once, by one of the two
    study = optuna.load_study(study_name="shared", storage=storage)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 6
    for trial in complete:  # each job's scores are in its trial, the same as in its folder
        job = json.loads((Path(trial.user_attrs[RESULT]["job_dir"]) / "result.json").read_text())
        assert trial.user_attrs[RESULT]["objective"] == job["objective"] == trial.value
        assert job["optuna_trial"] == trial.number
    members = {k: v for k, v in study.user_attrs.items() if k.startswith(MEMBER)}
    assert len(members) == 2 and {m["state"] for m in members.values()} == {"done"}

    folder = study_folder(log_dir, "shared")
    with open(folder / "trials.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(int(r["job"]) for r in rows) == [t.number for t in complete]
    best = json.loads((folder / "best.json").read_text())
    two_best = sorted(complete, key=lambda t: t.value)[:2]
    assert sorted(r["job"] for r in best["rescored"]) == sorted(str(t.number) for t in two_best)
    assert best["eval"]["samples_per_label"] == 8 and best["trial"]["samples_per_label"] == 4
    assert best["objective"] == min(r["objective"] for r in best["rescored"])

    runs = [read_finished_run(path) for path in find_run_files(log_dir / "search")]
    summaries = [r for r in runs if r.job_type == "sweep-summary"]
    assert len(summaries) == 1 and summaries[0].group == "shared"
    assert summaries[0].summary["best/objective"] == pytest.approx(best["objective"])
    jobs = [r for r in runs if r.job_type == "search"]
    assert len(jobs) == 6 and {r.group for r in jobs} == {"shared"}
    # Each process still summarised its own folder (files only).
    for out in outputs:
        assert (sweep_dir_of(out) / "trials.csv").is_file()


def sweep_dir_of(stdout: str):
    return sweep_dir(subprocess.CompletedProcess([], 0, stdout=stdout))
