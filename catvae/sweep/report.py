"""Figure 1, Table 4 and the frontier from search folders (``python -m catvae.report``,
``python -m catvae.paper``): each multirun folder's ``trials.csv`` and ``best.json`` are read (no W&B
needed); ``figure1.png`` (accuracy against mean cosine similarity, one curve per sweep) and
``table4.md`` (our best configuration per sweep beside the paper's Table 4 rows) are written, and for
judged sweeps ``frontier.png`` and ``frontier.md``."""

from __future__ import annotations

import json
import math
from pathlib import Path

from catvae.core.errors import ConfigError
from catvae.core.files import write_text
from catvae.evaluation.metric_keys import SAMPLE_METRICS
from catvae.sweep.summary import plot_figure1, read_results, read_trials

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


def check_results_folder(folder: Path) -> None:
    """A finished search folder holds trials.csv and best.json."""
    trials, best_file = folder / "trials.csv", folder / "best.json"
    if not trials.is_file() or not best_file.is_file():
        missing = " and ".join(file.name for file in (trials, best_file) if not file.is_file())
        raise ConfigError("SWEEP_DIR", str(folder), f"a finished `python -m catvae.search -m` folder (this one has no {missing})")


def report(sweep_dirs: list[Path], out: Path) -> dict[str, Path]:
    """Write figure1.png and table4.md for the sweeps into ``out``; with judged sweeps also the
    frontier (:func:`frontier`)."""
    curves, bests = {}, []
    for folder in sweep_dirs:
        check_results_folder(folder)
        trials, best_file = folder / "trials.csv", folder / "best.json"
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
    written = {"figure": figure, "table": table}
    judged = [folder for folder in sweep_dirs if any("judge_accuracy" in r for r in read_results(folder))]
    if judged:
        written.update(frontier(judged, out))
    return written


# ---------------------------------------------------------------- the frontier, judged --------------------------

FRONTIER_LEVELS = (0.99, 0.97, 0.95)  # judge accuracies at which the table compares the curves
FRONTIER_LOWEST = 0.9  # the frontier plot's accuracy axis starts here: the levels above are what it compares
# (result key, column title): eq. 4's terms, then the sample metrics, as catvae.evaluation.sample_metrics declares them
FRONTIER_COLUMNS = (
    ("judge_accuracy", "judge acc"),
    ("cos_pairwise", "cos"),
    ("accuracy", "paper acc"),
    *((metric.key, metric.title) for metric in SAMPLE_METRICS if metric.table),
)
METHOD_TITLES = {"gradient": "gradient", "optuna": "Optuna", "paper_grid": "grid", "grid": "grid"}


def curve_name(result: dict) -> str:
    """``MMD-20 gmm Medium-2 (gradient)``: the VAE, the class density, the generator and how θ was chosen."""
    key = result["key"]
    generator = GENERATOR_TITLES.get(result["name"], result["name"])
    method = METHOD_TITLES.get(result.get("search", "grid"), result.get("search", "grid"))
    return f"{key['vae'].upper()}-{key['latent_dim']} {result.get('latent', 'diag')} {generator} ({method})"


def reference_points(results: list[dict]) -> dict[str, dict]:
    """The reference rows a sweep's models give: the judge's scores of real test images (half of
    the test set against the other half) and of the VAE's reconstructions of the test images, read
    from the judge's and the VAE's ``summary.json`` (absent ones are skipped)."""
    from catvae.artifacts import judge_folder

    found: dict[str, dict] = {}
    folder = Path((results[0].get("models") or {}).get("folder", ""))
    summary_file = folder / "summary.json"
    if not summary_file.is_file():
        return found
    summary = json.loads(summary_file.read_text())
    key = results[0]["key"]
    data = key["data"]
    reference = summary.get("reference") or {}
    if "judge_accuracy" in reference:
        found[f"{data}: {key['vae'].upper()}-{key['latent_dim']} test reconstructions"] = reference
    judge_seed = (reference.get("judge") or {}).get("seed", 0)
    judge_summary = judge_folder(folder.parent.parent.parent, data, judge_seed) / "summary.json"
    if judge_summary.is_file():
        real = json.loads(judge_summary.read_text()).get("reference") or {}
        if "judge_accuracy" in real:
            found[f"{data}: real test images"] = real
    return found


def at_level(results: list[dict], level: float) -> dict | None:
    """The most diverse result (lowest cos_pairwise) whose judge accuracy reaches ``level``."""
    reaching = [r for r in results if r.get("judge_accuracy", 0.0) >= level]
    return min(reaching, key=lambda r: r["cos_pairwise"]) if reaching else None


def _cell(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "–"
    return f"{value:.2f}" if abs(value) >= 10 else f"{value:.4f}"


def frontier_levels(references: dict[str, dict]) -> tuple[float, ...]:
    """The judge accuracies the table compares at: :data:`FRONTIER_LEVELS` (MNIST's real test images
    score 0.99), or, on a harder dataset whose real test images the judge scores below 0.99
    (Fashion-MNIST: 0.92), that accuracy rounded down to 0.01 and 0.05 and 0.10 below it (its
    generators spread wider in accuracy than MNIST's)."""
    real = [scores["judge_accuracy"] for name, scores in references.items() if name.endswith("real test images")]
    if not real or min(real) >= FRONTIER_LEVELS[0]:
        return FRONTIER_LEVELS
    top = math.floor(min(real) * 100) / 100
    return tuple(round(top - step, 2) for step in (0.0, 0.05, 0.10))


def frontier_table(
    curves: dict[str, list[dict]], references: dict[str, dict], levels: tuple[float, ...] = FRONTIER_LEVELS
) -> str:
    """Markdown: for each curve and each of the ``levels``, its most diverse point at that
    judge accuracy (or "–" where the curve never reaches it) with every sample metric; the
    reference rows first."""
    titles = [title for _, title in FRONTIER_COLUMNS]
    lines = [
        "| curve | level | " + " | ".join(titles) + " | θ / n | samples/label |",
        "| --- | --- | " + " | ".join("---" for _ in titles) + " | --- | --- |",
    ]
    for name, scores in references.items():
        lines.append(f"| {name} | reference | " + " | ".join(_cell(scores.get(k)) for k, _ in FRONTIER_COLUMNS) + " | – | – |")
    for name, results in curves.items():
        for level in levels:
            point = at_level(results, level)
            if point is None:
                lines.append(f"| {name} | ≥ {level} | " + " | ".join("–" for _ in titles) + " | – | – |")
                continue
            cells = " | ".join(_cell(point.get(k)) for k, _ in FRONTIER_COLUMNS)
            theta = f"{format_theta(point['theta'])} / {point['n']}"
            lines.append(f"| {name} | ≥ {level} | {cells} | {theta} | {point.get('samples_per_label', '–')} |")
    return "\n".join(lines) + "\n"


def frontier(sweep_dirs: list[Path], out: Path) -> dict[str, Path]:
    """``frontier.png``: judge accuracy against cos_pairwise, one curve (Pareto front) per
    (VAE, density, generator, fitting method), the sweeps that share one pooled, real test images and test reconstructions as
    reference stars; ``frontier.md``: :func:`frontier_table`."""
    curves: dict[str, list[dict]] = {}
    references: dict[str, dict] = {}
    for folder in sweep_dirs:
        results = [r for r in read_results(folder) if "judge_accuracy" in r]
        # Sweeps of one (VAE, density, generator, method) are points of one front (e.g. a finer
        # gradient run between the weights of a first one).
        curves.setdefault(curve_name(results[0]), []).extend(results)
        references.update(reference_points(results))
    markers = {name: (scores["cos_pairwise"], scores["judge_accuracy"]) for name, scores in references.items()}
    data = ", ".join(sorted({r["key"]["data"] for results in curves.values() for r in results}))
    levels = frontier_levels(references)
    lowest = min(FRONTIER_LOWEST, round(levels[-1] - 0.05, 2))
    title = f"{data}: accuracy by the independent judge (axis from {lowest})"
    figure = plot_figure1(curves, out / "frontier.png", title, markers, accuracy="judge_accuracy", lowest=lowest)
    table = out / "frontier.md"
    write_text(frontier_table(curves, references, levels), table)
    return {"frontier": figure, "frontier_table": table}
