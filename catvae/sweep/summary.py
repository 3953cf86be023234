"""The summary of a search multirun (a Hydra callback run at the end of the sweep).

Reads every job's ``result.json`` in the multirun folder and writes there ``trials.csv`` (one row
per job), ``figure1.png`` (accuracy against mean cosine similarity, Figure-1 style, Pareto front
marked) and ``best.json``; records the best configuration in the search records folder
(:mod:`catvae.sweep.records`, so ``generate … generator.from_search=best`` finds it; never in the
artifact folder, which is ``catvae.train``'s) and logs all of it to W&B.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable
from pathlib import Path

from catvae.artifacts import ArtifactKey
from catvae.core.environment import wandb_offline
from catvae.core.files import atomic_write, write_json
from catvae.evaluation.metric_keys import GROUP_KEYS, SAMPLE_METRIC_KEYS
from catvae.sweep.records import record_best, record_path
from catvae.sweep.scoring import RESULT_FILE

log = logging.getLogger(__name__)

COLUMNS = ["job", "generator", "latent", "theta", "n", "theta_eff", "accuracy", "cos_pairwise", "cos_to_mean", "objective"]
# The judge's scores (issue 8), after the paper's columns; a sample metric a job did not compute is left empty.
# The judge's accuracy and every metric group's keys (declared in catvae.evaluation.sample_metrics)
JUDGE_COLUMNS = ["judge_accuracy", *(key for keys in GROUP_KEYS.values() for key in keys)]
COLUMNS += JUDGE_COLUMNS


def read_results(sweep_dir: Path) -> list[dict]:
    """Every job's result in the sweep folder, in job order."""
    rows = []
    for path in sorted(sweep_dir.glob(f"*/{RESULT_FILE}"), key=lambda p: (len(p.parent.name), p.parent.name)):
        result = json.loads(path.read_text())
        rows.append({"job": path.parent.name, **result})
    return rows


def trial_row(result: dict) -> dict:
    """The trials.csv row of one result (θ as JSON when it is a vector or matrix)."""
    theta = result["theta"]
    return {
        "job": result["job"],
        "generator": result["name"],
        "latent": result.get("latent", "diag"),  # results from before class densities drew from diag
        "theta": theta if isinstance(theta, (int, float)) else json.dumps(theta),
        **{name: result.get(name) for name in COLUMNS[4:]},
    }


def write_trials(rows: list[dict], path: Path) -> Path:
    with atomic_write(path, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_trials(path: Path) -> list[dict]:
    """``trials.csv`` back, numbers as floats."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for name in ("n", "theta_eff", "accuracy", "cos_pairwise", "cos_to_mean", "objective", *JUDGE_COLUMNS):
            if name in row:
                row[name] = float(row[name]) if row[name] != "" else float("nan")
    return rows


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points (cos, accuracy) no other point beats: lower cos and higher accuracy, sorted by cos."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best_accuracy = [], float("-inf")
    for i in order:
        if points[i][1] > best_accuracy:
            front.append(i)
            best_accuracy = points[i][1]
    return front


def plot_figure1(
    curves: dict[str, list[dict]],
    path: Path,
    title: str,
    markers: dict[str, tuple[float, float]] | None = None,
    accuracy: str = "accuracy",
    lowest: float | None = None,
) -> Path:
    """Accuracy against mean cosine similarity, one colour per sweep, each sweep's Pareto front as a
    line; ``markers`` adds single labelled points (cos, accuracy), e.g. the paper's Table 4 rows.
    ``accuracy`` names the rows' accuracy (``judge_accuracy``: the independent judge's); ``lowest``,
    if given, is the bottom of the accuracy axis (points below it are cut off)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    crowded = len(curves) + len(markers or {}) > 6  # then a wider figure with the legend beside the axes
    figure, axes = plt.subplots(figsize=(11.5, 6.4) if crowded else (6.4, 4.8))
    colours = plt.get_cmap("tab20" if crowded else "tab10")
    for index, (label, rows) in enumerate(curves.items()):
        points = [(row["cos_pairwise"], row[accuracy]) for row in rows]
        cos_values, accuracies = zip(*points)
        colour = colours(index % colours.N)
        axes.scatter(cos_values, accuracies, s=14, alpha=0.45, color=colour)
        front = [points[i] for i in pareto_front(points)]
        axes.plot(*zip(*front), marker="o", markersize=4, color=colour, label=f"{label} (Pareto front)")
    for label, (cos, marked) in (markers or {}).items():
        axes.scatter([cos], [marked], marker="*", s=160, edgecolor="black", zorder=3, label=label)
    axes.set_xlabel("mean cosine similarity between samples (lower = more diverse)")
    axes.set_ylabel("accuracy" if accuracy == "accuracy" else f"accuracy ({accuracy.removesuffix('_accuracy')})")
    axes.set_title(title)
    if lowest is not None:
        axes.set_ylim(bottom=lowest, top=1.0 + (1.0 - lowest) * 0.02)
    axes.grid(alpha=0.3)
    if crowded:
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    else:
        axes.legend(loc="lower right")
    figure.tight_layout()
    with atomic_write(path, binary=True) as handle:
        figure.savefig(handle, dpi=120, format=path.suffix.lstrip(".") or "png")
    plt.close(figure)
    return path


def summarize(
    sweep_dir: Path,
    records_dir: str | None = None,
    log_to_wandb: bool = False,
    project: str = "catvae",
    rescore: Callable[[list[dict]], list[dict]] | None = None,
    rescore_top: int = 0,
    results: list[dict] | None = None,
    group: str | None = None,
) -> dict:
    """Write trials.csv, figure1.png and best.json for the sweep; record the best in ``records_dir``.

    ``results`` are the jobs' results (by default read from the job folders of ``sweep_dir``; a
    study summary passes those its storage holds, :mod:`catvae.sweep.study`); ``group`` is the W&B
    group of the summary run (by default the sweep folder's name, the group of its jobs).

    With ``rescore``, the ``rescore_top`` best jobs are scored again (on more samples) and the best
    of those is the sweep's best; best.json then holds the re-scored metrics and, under
    ``trial``, those the sweep ran on.
    """
    results = read_results(sweep_dir) if results is None else results
    if not results:
        log.warning("no finished job in %s: nothing to summarize", sweep_dir)
        return {}
    rows = [trial_row(r) for r in results]
    trials = write_trials(rows, sweep_dir / "trials.csv")
    key = results[0]["key"]
    name = f"{key['vae']}-{key['latent_dim']} {results[0].get('latent', 'diag')} {results[0]['name']}"
    figure = plot_figure1({name: rows}, sweep_dir / "figure1.png", f"{key['data']} {name}: {len(rows)} trials")
    candidates = sorted(results, key=lambda r: r["objective"])
    if rescore is not None and rescore_top > 0:
        candidates = sorted(rescore(candidates[:rescore_top]), key=lambda r: r["objective"])
    best = candidates[0]
    record = {
        "sweep_dir": str(sweep_dir),
        "key": key,
        "job": best["job"],
        "config": best["config"],
        "latent": best.get("latent", "diag"),
        "eval": {k: best[k] for k in ("samples_per_label", "seed", "cos")},
        **{k: best[k] for k in ("name", "theta", "n", "theta_eff", "accuracy", "cos_pairwise", "cos_to_mean", "objective")},
        "objective_classifier": best.get("objective_classifier", "paper"),
        **{k: best[k] for k in ("judge_accuracy", *SAMPLE_METRIC_KEYS) if k in best},
        "models": best.get("models"),
        "provenance": best.get("provenance"),
    }
    if "trial" in best:
        record["trial"] = best["trial"]
        record["rescored"] = [
            {"job": r["job"], "objective": r["objective"], "trial_objective": r["trial"]["objective"]} for r in candidates
        ]
    if records_dir is not None and record["models"] is None:
        log.warning(
            "the jobs of %s do not say which models they scored (written by an older catvae): their best is not recorded",
            sweep_dir,
        )
    elif records_dir is not None:
        if len({json.dumps(r.get("models"), sort_keys=True) for r in candidates}) > 1:
            log.warning(
                "the jobs of %s scored different models (retrained during the sweep?): the best is "
                "recorded with the fingerprint of the models it was scored on",
                sweep_dir,
            )
        artifact_key = ArtifactKey(key["data"], key["vae"], key["latent_dim"], key["seed"])
        path = record_path(records_dir, artifact_key, best["name"], record["latent"])
        recorded = record_best(path, dict(record))
        record.update(record=str(path), recorded_as_best=recorded)
    write_json(record, sweep_dir / "best.json")
    if log_to_wandb:
        log_sweep_to_wandb(sweep_dir, rows, record, figure, project, group=group or sweep_dir.name)
    return {"trials": trials, "figure": figure, "best": record}


def log_sweep_to_wandb(sweep_dir: Path, rows: list[dict], best: dict, figure: Path, project: str, group: str) -> None:
    """One W&B run (job type ``sweep-summary``) with the trials table, a scatter plot, Figure 1 and the best."""
    import wandb

    run = wandb.init(
        project=project,
        group=group,
        job_type="sweep-summary",
        name=f"summary-{group}",
        dir=str(sweep_dir),
        mode="offline" if wandb_offline() else "online",
        config={"sweep_dir": str(sweep_dir)},
        reinit="finish_previous",
    )
    try:
        # wandb annotates columns as the invariant list[str | int]; a list[str] is accepted at run time.
        table = wandb.Table(columns=COLUMNS, data=[[row[c] for c in COLUMNS] for row in rows])  # type: ignore[arg-type]
        run.log(
            {
                "trials": table,
                "accuracy_vs_cos": wandb.plot.scatter(table, "cos_pairwise", "accuracy", title="accuracy vs cosine similarity"),
                "figure1": wandb.Image(str(figure)),
            }
        )
        run.summary.update({f"best/{k}": v for k, v in best.items() if isinstance(v, (int, float))})
    finally:
        run.finish()
