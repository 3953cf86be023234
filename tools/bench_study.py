"""``python tools/bench_study.py``: load test of one Optuna study shared by concurrent sweep processes.

For each count P of ``--processes`` it starts P ``python -m catvae.search -m search=optuna``
processes at once, all on one new study of ``--trials`` trials in total (split as evenly as
possible; each process gets its own sampler seed) on ``--storage`` (default: a throw-away
PostgreSQL server started with ``.ci/postgres`` from a checkout, stopped at the end). Then it checks:

- every process exited 0, and the study holds exactly ``--trials`` trials, all COMPLETE;
- none lost or duplicated: the trial numbers the jobs record in their ``result.json``
  (``optuna_trial``) are each trial exactly once, so the study's trial count equals the sum of the
  processes' jobs, and no two jobs share params and trial number; each job scored its trial's
  parameters (θ, n), into the folder the trial records, and the objective Optuna holds is the job's;
- the study was summarised once, by one of the processes, over all its trials
  (:mod:`catvae.sweep.study`);
- with ``--logger wandb`` (offline), every job's W&B run is in the group named after the study,
  and so is the study's one ``sweep-summary`` run.

It reports, per P: wall time (launch of the first process to exit of the last), trials/s, the
per-trial cost inside a process (median spacing of consecutive jobs' ends), its compute (sample,
decode, classify, score) and the overhead (the rest: Hydra, the loggers, Optuna's ask and tell on
the shared storage), and the time from launch to a process's first finished job. Models are
freshly initialised networks of the real sizes (as in ``python -m catvae.bench``: a trial's cost does not
depend on the weights), unless ``--log-dir`` names a folder with trained artifacts. It prints a
table and writes ``load_test.json``, whose path it prints last. Exit status 1 when a check fails.

A developer tool of the checkout (``tools/``, not shipped in the wheel): run it as a script from the
repository, with catvae installed; it reads the jobs' W&B runs back with ``tools/wandb_files.py``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from catvae.core.files import write_json
from catvae.core.threads import available_cores
from catvae.sweep.study import study_folder

RESULT_FILE = "result.json"


# ---------------------------------------------------------------- PostgreSQL ----------------------------------


def postgres_script() -> Path | None:
    """``.ci/postgres`` of the checkout we run from (the working directory's, or this script's)."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[1]):
        if (root / ".ci" / "postgres").is_file():
            return root / ".ci" / "postgres"
    return None


@contextlib.contextmanager
def throwaway_postgres(script: Path) -> Iterator[str]:
    """A PostgreSQL server of our own (``script start`` in a new folder under /tmp), its URL; stopped after."""
    folder = tempfile.mkdtemp(prefix="catvae-pg-")
    started = subprocess.run(["bash", str(script), "start", folder], capture_output=True, text=True)
    if started.returncode != 0:
        raise RuntimeError(f"could not start a PostgreSQL server ({script} start {folder}):\n{started.stderr[-2000:]}")
    try:
        yield started.stdout.strip()
    finally:
        subprocess.run(["bash", str(script), "stop", folder], capture_output=True, text=True)
        subprocess.run(["rm", "-rf", folder], check=False)


# ---------------------------------------------------------------- the sweeps ----------------------------------


def split(trials: int, processes: int) -> list[int]:
    """``trials`` shared out among ``processes`` as evenly as possible (the first ones get one more)."""
    return [trials // processes + (1 if i < trials % processes else 0) for i in range(processes)]


def search_arguments(storage: str, study: str, n_trials: int, seed: int, overrides: Sequence[str]) -> list[str]:
    """The command line after ``python -m catvae.search`` of one process of the shared study."""
    return [
        "-m",
        "search=optuna",
        f"search.storage_url={storage}",
        f"hydra.sweeper.study_name={study}",
        f"hydra.sweeper.n_trials={n_trials}",
        f"search.sampler_seed={seed}",
        *overrides,
    ]


def launch(log_dir: Path, storage: str, study: str, n_trials: int, seed: int, overrides: Sequence[str]) -> subprocess.Popen:
    """Start one process of the shared study (a fresh interpreter, W&B offline, logs under ``log_dir``)."""
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "CATVAE_LOG_DIR": str(log_dir)}
    command = [sys.executable, "-m", "catvae.search", *search_arguments(storage, study, n_trials, seed, overrides)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def shared_study(
    storage: str, study: str, trials: int, processes: int, log_dir: Path, overrides: Sequence[str], timeout_s: float = 3600
) -> dict[str, Any]:
    """Run ``trials`` trials of a new study ``study`` split across ``processes`` concurrent sweeps;
    their figures and the checks (each ``name: problem``; none when all hold)."""
    shares = split(trials, processes)
    # P processes on one machine share its cores: each gets cores // P torch threads (as joblib's
    # workers do), unless the overrides say otherwise; oversubscribed OpenMP threads wait on each other.
    if not any(o.startswith("hydra.callbacks.threads.per_job=") for o in overrides):
        overrides = [*overrides, f"hydra.callbacks.threads.per_job={max(available_cores() // processes, 1)}"]
    started = time.time()
    procs = [launch(log_dir, storage, study, n, seed, overrides) for seed, n in enumerate(shares, start=1)]
    try:
        outputs = [proc.communicate(timeout=timeout_s) for proc in procs]
    except BaseException:  # interrupted or timed out: no sweep outlives the load test (or its server)
        for proc in procs:
            proc.kill()
        raise
    wall = time.time() - started
    problems = [
        f"process {i} (seed {i + 1}) exited {proc.returncode}: {err.strip()[-1500:]}"
        for i, (proc, (_, err)) in enumerate(zip(procs, outputs))
        if proc.returncode != 0
    ]
    if problems:
        return {"processes": processes, "trials": trials, "wall_s": round(wall, 2), "problems": problems}
    folders = [Path(out.strip().splitlines()[-1].removeprefix("sweep summary: ")) for out, _ in outputs]
    jobs = [[json.loads(p.read_text()) | {"_dir": p.parent} for p in sorted(f.glob(f"*/{RESULT_FILE}"))] for f in folders]
    problems = check(storage, study, trials, shares, jobs)
    problems += check_study_summary(log_dir, study, trials, [out for out, _ in outputs])
    if any("wandb" in o for o in overrides if o.startswith("logger=")):
        problems += check_wandb_groups([*folders, study_folder(log_dir, study)], study, trials)
    return {
        "processes": processes,
        "trials": trials,
        "jobs_per_process": [len(j) for j in jobs],
        "wall_s": round(wall, 2),
        "trials_per_s": round(trials / wall, 3),
        **per_trial_costs(jobs, started),
        "sweep_folders": [str(f) for f in folders],
        "problems": problems,
    }


def check(storage: str, study_name: str, trials: int, shares: list[int], jobs: list[list[dict]]) -> list[str]:
    """What is wrong with the study and the jobs' records (empty when nothing)."""
    import optuna

    from catvae.sweep.trials import JOB_DIR

    problems = []
    study = optuna.load_study(study_name=study_name, storage=storage)
    states = collections.Counter(t.state.name for t in study.trials)
    if len(study.trials) != trials or states != {"COMPLETE": trials}:
        problems.append(f"study: {len(study.trials)} trials ({dict(states)}), expected {trials} COMPLETE")
    counts = [len(j) for j in jobs]
    if counts != shares:
        problems.append(f"jobs per process {counts}, expected {shares}")
    records = [job for process in jobs for job in process]
    numbers = collections.Counter(job.get("optuna_trial") for job in records)
    in_study = sorted(t.number for t in study.trials)
    if sorted(n for n in numbers.elements() if n is not None) != in_study or None in numbers or sum(counts) != len(in_study):
        lost = sorted(set(in_study) - set(numbers))
        twice = sorted(n for n, c in numbers.items() if c > 1 and n is not None)
        problems.append(f"trial numbers: lost {lost}, recorded by more than one job {twice}, {numbers[None]} jobs with none")
    by_number = {t.number: t for t in study.trials}
    pairs = collections.Counter((job.get("optuna_trial"), json.dumps(params_of(job), sort_keys=True)) for job in records)
    if any(c > 1 for c in pairs.values()):
        problems.append(f"jobs with the same params and trial number: {[k for k, c in pairs.items() if c > 1]}")
    for job in records:
        trial = by_number.get(job.get("optuna_trial", -1))
        if trial is None:
            continue
        scored, asked = params_of(job), trial_params(trial.params)
        if scored != asked:
            problems.append(f"{job['_dir']}: scored {scored}, its trial {trial.number} asked {asked}")
        if trial.user_attrs.get(JOB_DIR) != str(job["_dir"]):
            problems.append(f"trial {trial.number} records job folder {trial.user_attrs.get(JOB_DIR)}, scored in {job['_dir']}")
        if trial.value is None or abs(trial.value - job["objective"]) > 1e-9:
            problems.append(f"trial {trial.number}: Optuna holds {trial.value}, its job scored {job['objective']}")
    return problems


def flat(value: Any) -> list[float]:
    return [x for item in value for x in flat(item)] if isinstance(value, list) else [round(float(value), 6)]


def params_of(job: dict) -> dict:
    """The parameters a job scored: θ's entries in order (a number, per dimension, or per class and
    dimension) and n."""
    return {"theta": flat(job["theta"]), "n": int(job["n"])}


def trial_params(params: dict) -> dict:
    """An Optuna trial's parameters in :func:`params_of`'s form (``generator.theta``,
    ``+generator.theta.{d}`` or ``+generator.theta.{y}.{d}`` in index order; ``generator.n``)."""

    def index(name: str) -> tuple[int, ...]:
        return tuple(int(part) for part in name.split("generator.theta", 1)[1].split(".") if part)

    names = sorted((k for k in params if "generator.theta" in k), key=index)
    return {"theta": [round(float(params[k]), 6) for k in names], "n": int(params["generator.n"])}


def check_study_summary(log_dir: Path, study: str, trials: int, outputs: list[str]) -> list[str]:
    """The study was summarised once, by one process, over all its trials (catvae.sweep.study)."""
    writers = sum("study summary: " in out for out in outputs)
    path = study_folder(log_dir, study) / "trials.csv"
    rows = len(path.read_text().splitlines()) - 1 if path.is_file() else 0
    if writers != 1 or rows != trials:
        return [f"study summary: written by {writers} processes with {rows} trials, expected by 1 with {trials}"]
    return []


def check_wandb_groups(folders: list[Path], study: str, trials: int) -> list[str]:
    """Every job's offline W&B run is in the group named after the study, and so is the study's one
    sweep-summary run (``folders``: the processes' sweep folders and the study summary's)."""
    from wandb_files import find_run_files, read_finished_run

    runs = [read_finished_run(path) for folder in folders for path in find_run_files(folder)]
    jobs = [run for run in runs if run.job_type == "search"]
    groups = collections.Counter(run.group for run in jobs)
    problems = []
    if len(jobs) != trials or set(groups) != {study}:
        problems.append(f"W&B: {len(jobs)} search runs in groups {dict(groups)}, expected {trials} in group {study}")
    summaries = [run.group for run in runs if run.job_type == "sweep-summary"]
    if summaries != [study]:
        problems.append(f"W&B: sweep-summary runs in groups {summaries}, expected one in group {study}")
    return problems


def per_trial_costs(jobs: list[list[dict]], started: float) -> dict[str, float]:
    """Medians over every process: a trial's cost (spacing of consecutive jobs' ends in one process),
    its compute, the rest (overhead), and a process's time from launch to its first finished job."""
    spacing, compute, first = [], [], []
    for process in jobs:
        ordered = sorted(process, key=lambda job: job["timing_s"]["finished_at"])
        ends = [job["timing_s"]["finished_at"] for job in ordered]
        first.append(ends[0] - started)
        spacing += [b - a for a, b in itertools.pairwise(ends)]
        compute += [sum(job["timing_s"][k] for k in ("sample", "decode", "classify", "score")) for job in ordered[1:]]
    if not spacing:
        return {"first_job_s": round(statistics.median(first), 3)}
    trial, work = statistics.median(spacing), statistics.median(compute)
    return {
        "trial_s": round(trial, 4),
        "compute_s": round(work, 4),
        "overhead_s": round(trial - work, 4),
        "first_job_s": round(statistics.median(first), 3),
    }


# ---------------------------------------------------------------- command ------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python tools/bench_study.py", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200, help="trials of each study, in all")
    parser.add_argument("--processes", default="1,2,4", help="comma-separated counts of concurrent processes, one study each")
    parser.add_argument("--storage", default=None, help="SQLAlchemy URL; default: a throw-away PostgreSQL (.ci/postgres)")
    parser.add_argument("--log-dir", type=Path, default=None, help="folder with trained artifacts; default: fresh ones")
    parser.add_argument("--latent-dim", type=int, default=20)
    parser.add_argument("--trial-samples-per-label", type=int, default=250, help="search.trial_samples_per_label")
    parser.add_argument("--samples-per-label", type=int, default=1000, help="eval.samples_per_label (the re-scored best)")
    parser.add_argument("--rescore-top", type=int, default=1, help="search.rescore_top")
    parser.add_argument("--logger", default="wandb", help="logger= of every job (wandb runs offline)")
    parser.add_argument("--out", type=Path, default=Path("logs") / "bench", help="folder for load_test.json")
    parser.add_argument("overrides", nargs="*", help="more catvae.search overrides, for every process")
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> list[int]:
    from catvae.config.validate import integer_at_least
    from catvae.core.errors import ConfigError

    try:
        counts = [int(p) for p in args.processes.split(",")]
    except ValueError:
        raise ConfigError("--processes", args.processes, "comma-separated whole numbers, e.g. 1,2,4") from None
    for count in counts:
        integer_at_least("--processes", count, 1)
        if count > args.trials:
            raise ConfigError("--processes", count, f"at most --trials ({args.trials}): every process runs a trial")
    for option, minimum in (("trials", 1), ("latent_dim", 1), ("trial_samples_per_label", 2), ("samples_per_label", 2)):
        integer_at_least(f"--{option.replace('_', '-')}", getattr(args, option), minimum)
    integer_at_least("--rescore-top", args.rescore_top, 0)
    if args.logger not in ("wandb", "csv", "none"):
        raise ConfigError("--logger", args.logger, "wandb, csv or none")
    if args.log_dir is not None and not (args.log_dir / "artifacts").is_dir():
        raise ConfigError("--log-dir", str(args.log_dir), "a folder holding artifacts/ (catvae.train's output)")
    return counts


def main(argv: list[str] | None = None) -> Path:
    from catvae.config.task import command_errors

    args = parse(argv)
    # A SIGTERM (kill, a scheduler's time limit) unwinds like Ctrl-C: the throw-away server is stopped
    # and its folder removed instead of being left running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with command_errors():
        return load_test(args)


def load_test(args: argparse.Namespace) -> Path:
    """Run each P, print the table, write ``load_test.json``; exit 1 when a check failed."""
    from catvae.core.errors import ConfigError

    counts = check_args(args)
    overrides = [
        f"latent_dim={args.latent_dim}",
        f"search.trial_samples_per_label={args.trial_samples_per_label}",
        f"eval.samples_per_label={args.samples_per_label}",
        f"search.rescore_top={args.rescore_top}",
        f"logger={args.logger}",
        *args.overrides,
    ]
    with contextlib.ExitStack() as stack:
        storage = args.storage
        if storage is None:
            script = postgres_script()
            if script is None:
                raise ConfigError("--storage", None, "an SQLAlchemy URL: no .ci/postgres here to start a server with")
            storage = stack.enter_context(throwaway_postgres(script))
        log_dir = args.log_dir
        if log_dir is None:
            from catvae.training.benchmark import write_fresh_artifacts

            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="catvae-load-"))) / "logs"
            write_fresh_artifacts(log_dir / "artifacts", args.latent_dim)
        rows = []
        for count in counts:
            study = f"load-{args.trials}x{count}-{uuid.uuid4().hex[:6]}"
            row = shared_study(storage, study, args.trials, count, log_dir, overrides)
            rows.append({"study": study, **{k: v for k, v in row.items() if k != "sweep_folders"}})
            print(json.dumps(rows[-1]), flush=True)
    print_table(rows)
    report = {
        "rows": rows,
        "storage": storage.split("://", 1)[0],
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "storage"},
        "cpus": os.cpu_count(),
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "load_test.json"
    write_json(report, path)
    print(path)
    if any(row["problems"] for row in rows):
        sys.exit(1)
    return path


def print_table(rows: list[dict]) -> None:
    names = ("processes", "trials", "wall_s", "trials_per_s", "trial_s", "compute_s", "overhead_s", "first_job_s")
    lines = [names, *[tuple(str(row.get(n, "-")) for n in names) for row in rows]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(names))]
    print()
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)))
    for row in rows:
        for problem in row["problems"]:
            print(f"FAILED ({row['processes']} processes): {problem}")


if __name__ == "__main__":
    main()
