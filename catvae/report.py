"""``python -m catvae.report SWEEP_DIR… [--out DIR]``: Figure 1 and Table 4 from search folders.

Reads each multirun folder's ``trials.csv`` and ``best.json`` (no W&B needed) and writes
``figure1.png`` (accuracy against mean cosine similarity, one curve per sweep) and ``table4.md``
(our best configuration per sweep beside the paper's Table 4 rows).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from catvae.core.errors import ConfigError
from catvae.core.files import write_text
from catvae.core.task import command_errors
from catvae.sweep.summary import plot_figure1, read_trials

# Paper, Table 4 (VAE, generator) → (θ / n as printed, cos(x, x'), accuracy).
PAPER_TABLE4 = {
    ("elbo", 20, "simple"): ("0.4 / 2", 0.9200, 0.995),
    ("mmd", 20, "simple"): ("0.6 / 3", 0.8870, 0.9968),
    ("mmd", 10, "medium1"): ("[0. 0. 0. 0. 0.1 0.1 0.4 0.4 0.4 1.]* (partial)", 0.8168, 0.9960),
}
GENERATOR_TITLES = {"simple": "Simple", "medium1": "Medium-1", "medium2": "Medium-2"}


def sweep_label(best: dict) -> str:
    key = best["key"]
    return f"{key['vae'].upper()}-{key['latent_dim']} {GENERATOR_TITLES.get(best['name'], best['name'])}"


def format_theta(theta: object) -> str:
    if isinstance(theta, list) and theta and isinstance(theta[0], list):
        return f"{len(theta)}×{len(theta[0])} matrix (best.json)"
    if isinstance(theta, list):
        return json.dumps(theta).replace(", ", " ") if len(json.dumps(theta)) < 80 else f"{len(theta)}-vector (best.json)"
    return f"{theta:g}"


def table4(bests: list[dict]) -> str:
    """Markdown table laid out like the paper's Table 4, the paper's row above ours where one exists."""
    lines = ["| VAE | Generator | θ / n | cos(x, x') | acc | objective | source |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for best in bests:
        key = best["key"]
        vae = f"{key['vae'].upper()}-{key['latent_dim']}"
        generator = GENERATOR_TITLES.get(best["name"], best["name"])
        paper = PAPER_TABLE4.get((key["vae"], key["latent_dim"], best["name"]))
        if paper:
            theta_n, cos, acc = paper
            lines.append(f"| {vae} | {generator} | {theta_n} | {cos:.4f} | {acc:.4f} | {cos + 1 - acc:.4f} | paper |")
        lines.append(
            f"| {vae} | {generator} | {format_theta(best['theta'])} / {best['n']} | {best['cos_pairwise']:.4f} | "
            f"{best['accuracy']:.4f} | {best['objective']:.4f} | catvae ({best['eval']['samples_per_label']}/label) |"
        )
    return "\n".join(lines) + "\n"


def report(sweep_dirs: list[Path], out: Path) -> dict[str, Path]:
    """Write figure1.png and table4.md for the sweeps into ``out``."""
    curves, bests = {}, []
    for folder in sweep_dirs:
        trials, best_file = folder / "trials.csv", folder / "best.json"
        if not trials.is_file() or not best_file.is_file():
            missing = " and ".join(file.name for file in (trials, best_file) if not file.is_file())
            raise ConfigError(
                "SWEEP_DIR", str(folder), f"a finished `python -m catvae.search -m` folder (this one has no {missing})"
            )
        best = json.loads(best_file.read_text())
        label = sweep_label(best)
        while label in curves:
            label += "'"
        curves[label] = read_trials(trials)
        bests.append(best)
    out.mkdir(parents=True, exist_ok=True)
    paper = {
        f"paper: {key[0].upper()}-{key[1]} {GENERATOR_TITLES[key[2]]}": (cos, acc)
        for key, (_, cos, acc) in PAPER_TABLE4.items()
        if any((b["key"]["vae"], b["key"]["latent_dim"], b["name"]) == key for b in bests)
    }
    figure = plot_figure1(curves, out / "figure1.png", "accuracy vs. cosine similarity", paper)
    table = out / "table4.md"
    write_text(table4(bests), table)
    return {"figure": figure, "table": table}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m catvae.report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dirs", nargs="+", type=Path, help="multirun folders of catvae.search")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default logs/report/<time>)")
    args = parser.parse_args(argv)
    out = args.out or Path(os.environ.get("CATVAE_LOG_DIR", "logs")) / "report" / time.strftime("%Y-%m-%d_%H-%M-%S")
    with command_errors():
        written = report(args.sweep_dirs, out)
    print(written["table"].read_text())
    print(f"figure: {written['figure']}\ntable: {written['table']}")


if __name__ == "__main__":
    main()
