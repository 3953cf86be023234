"""catvae.report's frontier: judged sweeps → frontier.png and frontier.md (the point at each accuracy level)."""

import json
from pathlib import Path

import pytest

from catvae.artifacts import judge_folder
from catvae.sweep.report import at_level, curve_name, frontier_levels, report
from catvae.sweep.summary import trial_row, write_trials


def write_sweep(folder: Path, models: Path, name: str, latent: str, search: str, points: list[tuple[float, float]]) -> Path:
    """A finished sweep folder with one job per (judge_accuracy, cos_pairwise) point."""
    results = []
    for job, (judge_accuracy, cos) in enumerate(points):
        result = {
            "key": {"data": "mnist", "vae": "mmd", "latent_dim": 20, "seed": 0},
            "name": name,
            "latent": latent,
            "search": search,
            "theta": 0.1 * job,
            "n": 1,
            "theta_eff": 0.1 * job,
            "accuracy": judge_accuracy,
            "judge_accuracy": judge_accuracy,
            "cos_pairwise": cos,
            "cos_to_mean": cos,
            "objective": cos + 1 - judge_accuracy,
            "fid": 100 * cos,
            "near_copies": 0.01 * job,
            "samples_per_label": 1000,
            "models": {"folder": str(models)},
        }
        (folder / str(job)).mkdir(parents=True)
        (folder / str(job) / "result.json").write_text(json.dumps(result))
        results.append({"job": str(job), **result})
    write_trials([trial_row(r) for r in results], folder / "trials.csv")
    best = min(results, key=lambda r: r["objective"])
    (folder / "best.json").write_text(json.dumps({**best, "eval": {"samples_per_label": 1000}}))
    return folder


@pytest.fixture
def sweeps(tmp_path):
    artifacts = tmp_path / "artifacts"
    models = artifacts / "mnist" / "mmd-20" / "seed0"
    models.mkdir(parents=True)
    recon = {"judge_accuracy": 0.98, "cos_pairwise": 0.56, "fid": 4.9, "judge": {"seed": 0}}
    (models / "summary.json").write_text(json.dumps({"reference": recon}))
    judge = judge_folder(artifacts, "mnist", 0)
    judge.mkdir(parents=True)
    (judge / "summary.json").write_text(json.dumps({"reference": {"judge_accuracy": 0.99, "cos_pairwise": 0.54, "fid": 3.1}}))
    grid = write_sweep(tmp_path / "grid", models, "simple", "diag", "paper_grid", [(0.999, 0.9), (0.992, 0.8), (0.96, 0.7)])
    first = write_sweep(tmp_path / "gradient", models, "medium2", "gmm", "gradient", [(0.995, 0.62), (0.97, 0.55)])
    finer = write_sweep(tmp_path / "finer", models, "medium2", "gmm", "gradient", [(0.991, 0.58)])
    return [grid, first, finer]


def test_the_most_diverse_point_at_each_level_is_chosen():
    points = [{"judge_accuracy": a, "cos_pairwise": c} for a, c in [(0.999, 0.9), (0.992, 0.8), (0.96, 0.7)]]
    assert at_level(points, 0.99) == points[1]
    assert at_level(points, 0.95) == points[2]
    assert at_level(points, 0.9995) is None


def test_curve_names_say_vae_density_generator_and_method():
    result = {"key": {"vae": "mmd_conv", "latent_dim": 20}, "name": "medium2", "latent": "gmm", "search": "gradient"}
    assert curve_name(result) == "MMD_CONV-20 gmm Medium-2 (gradient)"
    assert curve_name({**result, "search": "paper_grid", "latent": "diag", "name": "simple"}).endswith("diag Simple (grid)")


def test_report_writes_the_frontier_with_references_and_pooled_sweeps(sweeps, tmp_path):
    written = report(sweeps, tmp_path / "out")
    assert written["frontier"].stat().st_size > 20_000  # a PNG with curves, stars and a legend
    lines = written["frontier_table"].read_text().splitlines()
    rows = {tuple(cell.strip() for cell in line.strip("|").split("|")[:2]): line for line in lines[2:]}
    assert "0.9900 | 0.5400" in rows[("mnist: real test images", "reference")]
    assert "0.9800 | 0.5600" in rows[("mnist: MMD-20 test reconstructions", "reference")]
    # The two gradient sweeps are one curve: at ≥ 0.99 its most diverse point is the finer run's 0.991 at 0.58.
    gradient = rows[("MMD-20 gmm Medium-2 (gradient)", "≥ 0.99")]
    assert "| 0.9910 | 0.5800 | 0.9910 | 58.00 |" in gradient
    assert "| 0.9700 | 0.5500 |" in rows[("MMD-20 gmm Medium-2 (gradient)", "≥ 0.97")]
    assert "| 0.9920 | 0.8000 |" in rows[("MMD-20 diag Simple (grid)", "≥ 0.99")]
    # precision, recall, density, coverage and CAS were not computed for it: shown as "–"
    assert "| 80.00 | – | – | – | – | 0.0100 | – |" in rows[("MMD-20 diag Simple (grid)", "≥ 0.99")]
    assert (tmp_path / "out" / "table4.md").is_file()


def test_levels_follow_the_real_images_on_a_harder_dataset():
    assert frontier_levels({"mnist: real test images": {"judge_accuracy": 0.9905}}) == (0.99, 0.97, 0.95)
    assert frontier_levels({}) == (0.99, 0.97, 0.95)
    # Fashion-MNIST: the judge scores real test images 0.9166, so nothing generated reaches 0.99.
    assert frontier_levels({"fashion_mnist: real test images": {"judge_accuracy": 0.9166}}) == (0.91, 0.86, 0.81)
