"""``python -m catvae.paper``: the paper's results section (§4.3) in one command.

Runs the paper's experiments (``catvae/conf/experiment/paper_*.yaml``): the training runs first
(ELBO-20, MMD-20, MMD-10; skipped where their artifacts exist), then the searches (the Simple
paper grid on ELBO-20 and MMD-20, Optuna searches of Medium-1 and Medium-2 on MMD-10), and writes
Figure 1 and Table 4 with ``catvae.report``. Each step is the command a user would type
(``python -m catvae.train experiment=…``, ``python -m catvae.search -m experiment=…``); they run
one after another.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from omegaconf import OmegaConf

from catvae.core.artifacts import ArtifactKey
from catvae.core.config import CONF_DIR
from catvae.core.files import write_text
from catvae.core.task import BUG_STATUS, USER_ERROR_STATUS, command_errors
from catvae.core.validate import integer_at_least
from catvae.report import report

EXPERIMENT_DIR = Path(CONF_DIR) / "experiment"


@dataclass(frozen=True)
class Experiment:
    """A named run of ``conf/experiment/``: which command runs it, and which search it names (if any)."""

    name: str
    search: str | None  # the ``/search`` option it selects; None for a training run

    @property
    def command(self) -> str:
        return "catvae.train" if self.search is None else "catvae.search"


def paper_experiments() -> list[Experiment]:
    """``paper_*`` experiments, training runs first (searches need their artifacts), each group by name."""
    found = []
    for path in sorted(EXPERIMENT_DIR.glob("paper_*.yaml")):
        experiment = cast(dict[str, Any], OmegaConf.to_container(OmegaConf.load(path)))  # an experiment file is a mapping
        defaults = experiment.get("defaults", [])
        choices = {key: value for entry in defaults if isinstance(entry, dict) for key, value in entry.items()}
        found.append(Experiment(path.stem, choices.get("override /search")))
    return sorted(found, key=lambda e: (e.search is not None, e.name))


def artifact_key(experiment: str, overrides: list[str]) -> tuple[ArtifactKey, Path]:
    """The artifact key and artifacts folder a training experiment publishes to."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONF_DIR):
        cfg = compose("train", [f"experiment={experiment}", *overrides])
    return ArtifactKey.from_config(cfg), Path(cfg.paths.artifacts_dir)


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


def sweep(args: list[str]) -> Path:
    """Run a search multirun and return its folder (its last line)."""
    lines = run(["catvae.search", "-m", *args]).strip().splitlines()
    return Path(lines[-1].removeprefix("sweep summary: "))


def timing_table(total: float) -> str:
    """Markdown: each stage's command and wall time, and the total."""
    rows = ["| stage | wall (s) |", "| --- | --- |"]
    rows += [f"| `{command.removeprefix('python -m ')}` | {seconds:.1f} |" for command, seconds in STAGES]
    rows.append(f"| **total** (report included) | **{total:.1f}** |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m catvae.paper", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="Optuna trials for each Medium search")
    parser.add_argument("--samples-per-label", type=int, default=1000, help="generated images per label and configuration")
    parser.add_argument(
        "--log-dir",
        type=Path,
        default=Path(os.environ.get("CATVAE_LOG_DIR", "logs")),
        help="where every command writes (default: $CATVAE_LOG_DIR, else logs)",
    )
    parser.add_argument("--extra", nargs="*", default=[], help="overrides passed to every command (e.g. logger=none)")
    args = parser.parse_args(argv)
    with command_errors():
        paper(args)


def paper(args: argparse.Namespace) -> None:
    """Run the paper's experiments (training skipped where artifacts exist) and write the report."""
    integer_at_least("--trials", args.trials, 1)
    integer_at_least("--samples-per-label", args.samples_per_label, 2)
    started = time.perf_counter()
    common = [f"paths.log_dir={args.log_dir}", *args.extra]
    evaluation = [f"eval.samples_per_label={args.samples_per_label}", *common]
    sweeps = []
    for experiment in paper_experiments():
        if experiment.search is None:
            key, artifacts_dir = artifact_key(experiment.name, common)
            if key.missing(artifacts_dir):
                run([experiment.command, f"experiment={experiment.name}", *common])
            continue
        trials = [f"hydra.sweeper.n_trials={args.trials}"] if experiment.search == "optuna" else []
        sweeps.append(sweep([f"experiment={experiment.name}", *trials, *evaluation]))
    out = args.log_dir / "report" / f"paper_{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    written = report(sweeps, out)
    total = time.perf_counter() - started
    timing = out / "timing.md"
    write_text(timing_table(total), timing)
    print(written["table"].read_text())
    print(timing.read_text())
    print(f"figure: {written['figure']}\ntable: {written['table']}\ntiming: {timing}\nwall time: {total:.0f} s")


if __name__ == "__main__":
    main()
