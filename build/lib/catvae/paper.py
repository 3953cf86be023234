"""``python -m catvae.paper``: the paper's results section (§4.3) in one command.

Trains what is missing (ELBO-20, MMD-20, MMD-10), runs the Simple paper grid for ELBO-20 and
MMD-20, Optuna searches of Medium-1 and Medium-2 for MMD-10, and writes Figure 1 and Table 4 with
``catvae.report``. Each step is the command a user would type; they run one after another.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from catvae.core.artifacts import REQUIRED, ArtifactKey
from catvae.report import report

TRAIN = [("elbo", 20), ("mmd", 20), ("mmd", 10)]


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
        sys.exit(f"error: `{' '.join(args)}` failed with exit status {result.returncode}")
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
    parser.add_argument("--log-dir", type=Path, default=Path("logs"))
    parser.add_argument("--extra", nargs="*", default=[], help="overrides passed to every command (e.g. logger=none)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    common = [f"paths.log_dir={args.log_dir}", *args.extra]
    for vae, dim in TRAIN:
        if not all((ArtifactKey("mnist", vae, dim, 0).folder(args.log_dir / "artifacts") / f).is_file() for f in REQUIRED):
            run(["catvae.train", f"vae={vae}", f"latent_dim={dim}", *common])
    evaluation = [f"eval.samples_per_label={args.samples_per_label}", *common]
    sweeps = [sweep([f"vae={vae}", "latent_dim=20", "generator=simple", "search=paper_grid", *evaluation]) for vae in ("elbo", "mmd")]
    for generator in ("medium1", "medium2"):
        sweeps.append(sweep(["vae=mmd", "latent_dim=10", f"generator={generator}", "search=optuna",
                             f"hydra.sweeper.n_trials={args.trials}", *evaluation]))
    out = args.log_dir / "report" / f"paper_{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    written = report(sweeps, out)
    total = time.perf_counter() - started
    timing = out / "timing.md"
    timing.write_text(timing_table(total))
    print(written["table"].read_text())
    print(timing.read_text())
    print(f"figure: {written['figure']}\ntable: {written['table']}\ntiming: {timing}\nwall time: {total:.0f} s")


if __name__ == "__main__":
    main()
