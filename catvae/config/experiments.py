"""The experiment sets behind ``python -m catvae.paper`` (``conf/experiment/<set>_*.yaml``): which
experiments a set holds, which artifacts each needs, and the run of a whole set, each step the command
a user would type (``python -m catvae.train …``, ``python -m catvae.search -m experiment=…``),
one after another, then the report (:mod:`catvae.sweep.report`)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from omegaconf import OmegaConf

from catvae.artifacts import ArtifactKey
from catvae.config import settings
from catvae.config.registry import CONF_DIR
from catvae.config.task import BUG_STATUS, USER_ERROR_STATUS
from catvae.config.validate import integer_at_least
from catvae.core.files import write_text
from catvae.sweep.report import report

EXPERIMENT_DIR = Path(CONF_DIR) / "experiment"
SETS = ("paper", "frontier", "fashion")  # the prefixes of conf/experiment/'s files


@dataclass(frozen=True)
class Experiment:
    """A named run of ``conf/experiment/``: which command runs it, and which search it names (if any)."""

    name: str
    search: str | None  # the ``/search`` option it selects; None for a training run

    @property
    def command(self) -> str:
        return "catvae.train" if self.search is None else "catvae.search"


def paper_experiments(set_name: str = "paper") -> list[Experiment]:
    """``<set_name>_*`` experiments, training runs first (searches need their artifacts), each group by name."""
    found = []
    for path in sorted(EXPERIMENT_DIR.glob(f"{set_name}_*.yaml")):
        experiment = cast(dict[str, Any], OmegaConf.to_container(OmegaConf.load(path)))  # an experiment file is a mapping
        defaults = experiment.get("defaults", [])
        choices = {key: value for entry in defaults if isinstance(entry, dict) for key, value in entry.items()}
        found.append(Experiment(path.stem, choices.get("override /search")))
    return sorted(found, key=lambda e: (e.search is not None, e.name))


def artifact_key(experiment: str, overrides: list[str], config: str = "train") -> tuple[ArtifactKey, Path]:
    """The artifact key and artifacts folder a training experiment publishes to (``config="search_job"``:
    that a search experiment scores)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONF_DIR):
        cfg = compose(config, [f"experiment={experiment}", *overrides])
    return settings.artifact_key(cfg), Path(cfg.paths.artifacts_dir)


def train_key(key: ArtifactKey) -> list[str]:
    """``catvae.train``'s arguments that train the artifacts of ``key``."""
    return ["catvae.train", f"data={key.data}", f"vae={key.vae}", f"latent_dim={key.latent_dim}", f"seed={key.seed}"]


STAGES: list[tuple[str, float]] = []  # (command, wall seconds), in the order they ran


def run(args: list[str]) -> str:
    """Run ``python -m catvae.<args>``, echoing the command and its wall time; its stdout is
    returned, a failure stops everything."""
    command = [sys.executable, "-m", *args]
    shown = " ".join(["python", "-m", *args])
    print("$", shown, flush=True)
    started = time.perf_counter()
    result = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        # The command printed why on stderr; a user error (2) stays one.
        print(f"error: `{shown}` failed with exit status {result.returncode}", file=sys.stderr)
        sys.exit(result.returncode if result.returncode == USER_ERROR_STATUS else BUG_STATUS)
    STAGES.append((shown, time.perf_counter() - started))
    print(f"  {STAGES[-1][1]:.1f} s", flush=True)
    return result.stdout


def sweep(args: list[str], multirun: bool = True) -> Path:
    """Run a search (a multirun, or ``search=gradient``'s single run) and return its folder (its last line)."""
    lines = run(["catvae.search", *(["-m"] if multirun else []), *args]).strip().splitlines()
    return Path(lines[-1].removeprefix("sweep summary: "))


def timing_table(total: float) -> str:
    """Markdown: each stage's command and wall time, and the total."""
    rows = ["| stage | wall (s) |", "| --- | --- |"]
    rows += [f"| `{command.removeprefix('python -m ')}` | {seconds:.1f} |" for command, seconds in STAGES]
    rows.append(f"| **total** (report included) | **{total:.1f}** |")
    return "\n".join(rows) + "\n"


def paper(args: argparse.Namespace) -> None:
    """Run the set's experiments (training skipped where artifacts exist) and write the report."""
    if args.trials is not None:
        integer_at_least("--trials", args.trials, 1)
    integer_at_least("--samples-per-label", args.samples_per_label, 2)
    started = time.perf_counter()
    common = [f"paths.log_dir={args.log_dir}", *args.extra]
    evaluation = [f"eval.samples_per_label={args.samples_per_label}", *common]
    sweeps = []
    for experiment in paper_experiments(args.set_name):
        if experiment.search is None:
            key, artifacts_dir = artifact_key(experiment.name, common)
            if key.missing(artifacts_dir):
                run([experiment.command, f"experiment={experiment.name}", *common])
            continue
        key, artifacts_dir = artifact_key(experiment.name, common, "search_job")
        if key.missing(artifacts_dir):
            run([*train_key(key), *common])
        trials = [f"hydra.sweeper.n_trials={args.trials}"] if experiment.search == "optuna" and args.trials else []
        sweeps.append(sweep([f"experiment={experiment.name}", *trials, *evaluation], multirun=experiment.search != "gradient"))
    out = args.log_dir / "report" / f"{args.set_name}_{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    written = report(sweeps, out)
    total = time.perf_counter() - started
    timing = out / "timing.md"
    write_text(timing_table(total), timing)
    print(written["table"].read_text())
    print(timing.read_text())
    print(f"figure: {written['figure']}\ntable: {written['table']}\ntiming: {timing}\nwall time: {total:.0f} s")
