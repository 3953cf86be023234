"""Hydra's launchers run catvae's jobs in other processes: joblib's workers on this machine, submitit's
jobs (SLURM; here its local executor). Same numbers as the basic launcher, models loaded once per
worker, threads split between workers, each Optuna trial found by its job, the SLURM config's values
in the sbatch script."""

import json
import os
import subprocess
from pathlib import Path

import joblib
import optuna
import pytest
import submitit
from conftest import TINY, install_judge
from helpers import run_command
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from optuna.trial import TrialState
from test_search import search, sweep_dir
from wandb_files import find_run_files, read_finished_run

from catvae.config.registry import CONF_DIR, TRUSTED_TARGETS
from catvae.core import threads
from catvae.sweep import trials
from catvae.sweep.scoring import RESULT_FILE

GRID = ["generator.theta=0.2,0.9", "generator.n=1,2"]
SCORES = ("theta", "n", "objective", "accuracy", "judge_accuracy", "cos_pairwise", "cos_to_mean", "fid", "nn_distance")


def results(folder: Path) -> dict[str, dict]:
    return {path.parent.name: json.loads(path.read_text()) for path in folder.glob(f"*/{RESULT_FILE}")}


@pytest.fixture
def no_thread_settings(monkeypatch):
    """Workers' threads as joblib sets them (cores // n_jobs): no thread count inherited from the caller."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)


def test_joblib_grid_scores_as_the_basic_launcher_with_one_load_per_worker(trained, tmp_path, no_thread_settings):
    basic = results(sweep_dir(search(trained["log_dir"], *GRID, f"hydra.sweep.dir={tmp_path / 'basic'}", "logger=none")))
    parallel = search(
        trained["log_dir"],
        *GRID,
        f"hydra.sweep.dir={tmp_path / 'joblib'}",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "logger=wandb",
    )
    folder = sweep_dir(parallel)
    jobs = results(folder)
    assert sorted(jobs) == sorted(basic) == [str(i) for i in range(4)]
    for job, result in jobs.items():
        # The same θ, n and scores: the worker's one thread sums in another order, so to float precision.
        assert {k: pytest.approx(result[k], rel=1e-5, abs=1e-6) for k in SCORES} == {k: basic[job][k] for k in SCORES}
    # Two workers at most, each loaded the models and the judge's reference once for all its jobs,
    # and ran cores // 2 threads, so that workers × threads stays within the cores.
    processes = [result["process"] for result in jobs.values()]
    pids = {p["pid"] for p in processes}
    assert 1 <= len(pids) <= 2 and all(p["loads"] == {"models": 1, "reference": 1} for p in processes)
    threads = max(joblib.cpu_count() // 2, 1)
    assert {p["torch_threads"] for p in processes} == {threads} and len(pids) * threads <= max(joblib.cpu_count(), len(pids))
    assert max(sum(1 for p in processes if p["pid"] == pid) for pid in pids) >= 2  # a worker ran several jobs
    # The summary, in the parent, has every job; one finished W&B run per job (closed in its worker), one summary run.
    best = json.loads((folder / "best.json").read_text())
    assert best["objective"] == min(result["objective"] for result in jobs.values())
    assert len((folder / "trials.csv").read_text().splitlines()) == 5
    runs = [read_finished_run(path) for path in find_run_files(folder)]
    search_runs = {run.name: run for run in runs if run.job_type == "search"}
    assert len(search_runs) == 4 and all(run.finished for run in runs) and {run.group for run in runs} == {folder.name}
    for job, result in jobs.items():
        assert search_runs[f"{folder.name}-{job}"].summary["objective"] == pytest.approx(result["objective"])
    (summary,) = [run for run in runs if run.job_type == "sweep-summary"]
    assert summary.summary["best/objective"] == pytest.approx(best["objective"])


def assert_trials_match_their_jobs(folder: Path, storage: str, study_name: str, count: int) -> dict[str, dict]:
    """Every job's ``optuna_trial`` is the study's trial recorded as scored in that job's folder, with its value and n."""
    jobs = results(folder)
    assert sorted(jobs) == [str(i) for i in range(count)]
    by_dir = {t.user_attrs[trials.JOB_DIR]: t for t in optuna.load_study(study_name=study_name, storage=storage).trials}
    for job, result in jobs.items():
        trial = by_dir[str(folder / job)]
        assert result["optuna_trial"] == trial.number and trial.state == TrialState.COMPLETE
        assert trial.value == result["objective"] and trial.params["generator.n"] == result["n"]
    return jobs


def test_optuna_batches_on_joblib_workers_record_their_trials(trained, tmp_path, no_thread_settings):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    args = ["generator=medium1", "search=optuna", f"search.storage_url={storage}", "hydra.sweeper.study_name=j", "logger=none"]
    # Two trials first (basic launcher), so that the joblib sweep's trial numbers are not its job numbers.
    search(trained["log_dir"], *args, "hydra.sweeper.n_trials=2", "search.sampler_seed=1")
    proc = search(
        trained["log_dir"],
        *args,
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_jobs=2",  # two batches of two trials, asked and told by the parent
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "search.sampler_seed=2",
        "hydra.callbacks.threads.per_job=2",  # threads set explicitly, whatever the workers
        background=True,
    )
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    folder = Path(stdout.strip().splitlines()[-1].removeprefix("sweep summary: "))
    jobs = assert_trials_match_their_jobs(folder, storage, "j", 4)
    assert sorted(job["optuna_trial"] for job in jobs.values()) == [2, 3, 4, 5]
    # The second batch ran in the workers of the first (loky reuses them): two processes, one load each.
    processes = [job["process"] for job in jobs.values()]
    assert len({p["pid"] for p in processes}) <= 2 and proc.pid not in {p["pid"] for p in processes}
    assert all(p["loads"]["models"] == 1 and p["torch_threads"] == 2 for p in processes)
    study = optuna.load_study(study_name="j", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 6
    assert len((folder / "trials.csv").read_text().splitlines()) == 5


def test_submitit_local_runs_optuna_trials_as_jobs_of_their_own(trained, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    proc = search(
        trained["log_dir"],
        "generator=medium1",
        "search=optuna",
        f"search.storage_url={storage}",
        "hydra.sweeper.study_name=s",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2",
        "search.sampler_seed=3",
        "hydra/launcher=submitit_local",
        "logger=none",
        background=True,
    )
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    folder = Path(stdout.strip().splitlines()[-1].removeprefix("sweep summary: "))
    jobs = assert_trials_match_their_jobs(folder, storage, "s", 2)
    pids = {job["process"]["pid"] for job in jobs.values()}
    assert len(pids) == 2 and proc.pid not in pids  # one process per job, none of them the sweep's
    # submitit's own record of each job: its log, and the objective it pickled back to the sweep.
    assert len(list((folder / ".submitit").glob("*/*_log.out"))) == 2
    returned = [submitit.core.utils.pickle_load(path) for path in (folder / ".submitit").glob("*/*_result.pkl")]
    assert sorted(ret.return_value for status, ret in returned if status == "success") == sorted(
        job["objective"] for job in jobs.values()
    )


@pytest.mark.subprocess
def test_submitit_local_trains_a_tiny_pipeline(trained, judge_cache, tmp_path):
    install_judge(judge_cache, tmp_path / "logs")  # the job trains the VAE and classifier, not the judge
    done = run_command(
        "train", "-m", *TINY, "logger=none", "hydra/launcher=submitit_local", log_dir=tmp_path / "logs", timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "logs" / "artifacts" / "mnist" / "elbo-4" / "seed0" / "summary.json").read_text())
    # The same configuration trained in this process (the session's fixture) gives the same models.
    reference = json.loads(trained["summary"].read_text())
    assert summary["key"] == reference["key"]
    for stage in ("vae_test", "classifier"):
        assert summary[stage] == pytest.approx(reference[stage], rel=1e-4)
    assert Path(summary["run_dir"]).parent.parent == tmp_path / "logs" / "train" / "multiruns"
    assert len(list((tmp_path / "logs" / "train" / "multiruns").glob("*/.submitit/*/*_log.out"))) == 1


def slurm_config(command: str, overrides: list[str], log_dir: Path):
    with initialize_config_dir(config_dir=CONF_DIR, job_name=command):
        cfg = compose(
            "train" if command == "train" else "search_job",
            overrides=[f"paths.log_dir={log_dir}", "hydra/launcher=slurm", *overrides],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)  # the sweep folder's name reads hydra:runtime.choices
    return cfg


def sbatch_script(cfg, tmp_path: Path, monkeypatch) -> str:
    """The sbatch script Hydra's submitit launcher writes for one job of ``cfg``: its real ``launch``,
    with ``srun`` faked on PATH (submitit checks it is on a cluster) and the submission intercepted."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text("#!/bin/sh\nexit 1\n")
    (fake / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    executors = []

    def submit(executor, *args, **kwargs):
        executors.append(executor)
        return []

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", submit)
    launcher = instantiate(cfg.hydra.launcher, _execution_whitelist_=[*TRUSTED_TARGETS, "hydra_plugins.*"])
    launcher.setup(hydra_context=None, task_function=lambda cfg: None, config=cfg)
    assert launcher.launch([["seed=1"]], initial_job_idx=0) == []
    (executor,) = executors
    return executor._executor._make_submission_file_text("python -m catvae", "uid")


@pytest.mark.parametrize("command", ["train", "search"])
def test_slurm_launcher_takes_its_resources_from_the_cluster_keys(command, tmp_path, monkeypatch):
    overrides = [
        "cluster.partition=gpu",
        "cluster.account=lab",
        "cluster.gpus_per_job=2",
        "cluster.cpus_per_task=8",
        "cluster.mem_gb=32",
        "cluster.time_min=240",
    ]
    cfg = slurm_config(command, overrides, tmp_path / "logs")
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    landed = (launcher.partition, launcher.account, launcher.gpus_per_node, launcher.cpus_per_task, launcher.mem_gb)
    assert landed == ("gpu", "lab", 2, 8, 32) and launcher.timeout_min == 240 and launcher.qos is None
    assert list(launcher.setup) == ["export OMP_NUM_THREADS=8"]
    script = sbatch_script(cfg, tmp_path, monkeypatch).splitlines()
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --account=lab",
        "#SBATCH --gpus-per-node=2",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=32GB",
        "#SBATCH --time=240",
        f"#SBATCH --job-name={command}",
        "export OMP_NUM_THREADS=8",
    ):
        assert line in script
    assert any(line.startswith("#SBATCH --output=") and str(tmp_path / "logs") in line for line in script)


def test_slurm_cluster_defaults_and_no_gpu(tmp_path, monkeypatch):
    cfg = slurm_config("search", ["cluster.gpus_per_job=null"], tmp_path / "logs")
    assert dict(cfg.cluster) == {
        "partition": None,
        "account": None,
        "qos": None,
        "gpus_per_job": None,
        "cpus_per_task": 4,
        "mem_gb": 16,
        "time_min": 60,
    }
    script = sbatch_script(cfg, tmp_path, monkeypatch)
    assert "--gpus-per-node" not in script and "--partition" not in script and "#SBATCH --time=60" in script


@pytest.mark.subprocess
def test_cluster_keys_are_typed_and_need_the_slurm_launcher(tmp_path):
    def train(*overrides: str) -> subprocess.CompletedProcess:
        return run_command("train", "-m", *overrides, log_dir=tmp_path / "logs")

    wrong = train("hydra/launcher=slurm", "cluster.gpus_per_job=two")
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert wrong.stderr.strip().splitlines()[-1] == "error: cluster.gpus_per_job='two' is not allowed: an integer or null"
    alone = train("cluster.partition=gpu")
    assert alone.returncode == 2 and "Traceback" not in alone.stderr
    assert "has no key 'cluster' (only hydra/launcher=slurm adds it" in alone.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "logs").exists()


def test_threads_per_job_split_the_cores_between_joblib_workers(monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 16)
    joblib_launcher = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"

    def per_job(n_jobs, given=None):
        return threads.threads_per_job({"_target_": joblib_launcher, "n_jobs": n_jobs}, given)

    assert [per_job(n) for n in (2, 4, 5, 16, 32, -1, -2, -9)] == [8, 4, 3, 1, 1, 1, 1, 2]
    assert per_job(1) is None and per_job(4, given=3) == 3  # one job at a time: torch's default; or as given
    basic = {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}
    assert threads.threads_per_job(basic, None) is None and threads.threads_per_job(basic, 2) == 2


@pytest.mark.subprocess
def test_threads_per_job_must_be_positive(tmp_path):
    done = run_command("search", "-m", "latent_dim=4", "hydra.callbacks.threads.per_job=0", log_dir=tmp_path / "logs")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "error: hydra.callbacks.threads.per_job=0 is not allowed: a whole number of threads ≥ 1, or null"
    )


@pytest.mark.slow
def test_trial_in_folder_finds_the_running_trial_of_a_job(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="f", storage=storage)
    asked = [study.ask() for _ in range(3)]
    for number, trial in enumerate(asked):
        trial.set_user_attr(trials.JOB_DIR, str(tmp_path / "sweep" / str(number)))
    study.tell(asked[0], 1.0)  # finished: its folder no longer names a running job
    assert trials.trial_in_folder(storage, "f", str(tmp_path / "sweep" / "2")) == 2
    assert trials.trial_in_folder(storage, "f", str(tmp_path / "sweep" / "1")) == 1
    assert trials.trial_in_folder(storage, "f", str(tmp_path / "sweep" / "0")) is None
    assert trials.trial_in_folder(storage, "other", str(tmp_path / "sweep" / "1")) is None
