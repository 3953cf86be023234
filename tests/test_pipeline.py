"""The training pipeline on a small slice: what it writes, what W&B holds, what generate makes of it."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread
from wandb_files import find_run_files, read_finished_run

from catvae.artifacts import ArtifactKey, load_models, staged_folder
from catvae.generate import generate


def test_train_publishes_artifacts_and_summary(trained):
    summary_path = trained["summary"]
    folder = ArtifactKey("mnist", "elbo", 4, 0).folder(trained["log_dir"] / "artifacts")
    assert summary_path == folder / "summary.json"
    names = ["classifier.pt", "densities.pt", "latent.png", "manifold.png", "samples.png", "stats.pt", "summary.json", "vae.pt"]
    assert sorted(p.name for p in folder.iterdir()) == names
    summary = json.loads(summary_path.read_text())
    assert summary["latent"] == summary["generator"]["latent"] == "diag"
    assert set(summary["densities"]["fit_seconds"]) == {"diag", "full", "gmm", "kde"}
    assert len(summary["densities"]["gmm_components"]) == 10
    for key in ("neg_elbo", "recon", "kl"):
        assert 0 < summary["vae_test"][key] < 1000
    assert summary["vae_test"]["neg_elbo"] == pytest.approx(summary["vae_test"]["recon"] + summary["vae_test"]["kl"], rel=1e-4)
    for key in ("acc_train_recon", "acc_test_recon", "acc_test_real"):
        assert 0.0 <= summary["classifier"][key] <= 1.0
    gen = summary["generator"]
    assert (gen["theta"], gen["n"]) == (0.4, 2) and gen["theta_eff"] == pytest.approx(0.4 / 2**0.5)
    assert gen["objective"] == pytest.approx(gen["cos_pairwise"] + 1 - gen["accuracy"])
    assert sorted(gen["per_label"]) == [str(i) for i in range(10)]
    assert summary["config"]["latent_dim"] == 4
    assert summary["artifacts"]["vae.pt"] == str(folder / "vae.pt")
    assert len(summary["class_means"]["predicted"]) == 10
    assert sorted(summary["artifacts"]) == sorted(p.name for p in folder.iterdir() if p.name != "summary.json")
    assert 0 <= summary["timing_s"]["views"] <= summary["timing_s"]["total"]
    # One row per label, grid_per_label=4 columns of 28-px images, 2-px padding, enlarged twice; the
    # labels 0-9 in a margin on the left.
    grid = imread(folder / "samples.png")
    assert grid.shape[0] == 2 * (10 * 30 + 2) and 2 * (4 * 30 + 2) < grid.shape[1] < 2 * (4 * 30 + 2) + 40
    # The latent views at D = 4: the PCA plane's scatter and a 20×20 decoded grid.
    assert imread(folder / "latent.png").shape[:2] == (720, 864)
    assert imread(folder / "manifold.png").shape[:2] == (20 * 30 + 2, 20 * 30 + 2)


def test_artifacts_load_back_with_the_trained_statistics(trained):
    models = load_models(ArtifactKey("mnist", "elbo", 4, 0), trained["log_dir"] / "artifacts")
    assert models.stats.mean.shape == (10, 4) and models.decoder.latent_dim == 4
    assert int(models.stats.count.sum()) == 1000  # 1,200 images less the 200 held out


def test_wandb_run_holds_the_logged_metrics(trained):
    (run_file,) = find_run_files(trained["log_dir"] / "run")
    run = read_finished_run(run_file)
    summary = json.loads(trained["summary"].read_text())
    assert run.job_type == "train" and run.group == "mnist-elbo-4" and run.project == "catvae"
    assert run.config["latent_dim"] == 4 and run.config["vae"]["name"] == "elbo"
    epochs = [row for row in run.history if "vae/train/neg_elbo" in row]
    assert len(epochs) == 1 and epochs[0]["vae/train/neg_elbo"] > 0
    assert any("classifier/train/acc" in row for row in run.history)
    assert run.summary["generator/objective"] == pytest.approx(summary["generator"]["objective"])
    assert run.summary["vae_test/neg_elbo"] == pytest.approx(summary["vae_test"]["neg_elbo"])
    assert run.summary["classifier/acc_test_real"] == pytest.approx(summary["classifier"]["acc_test_real"])
    for image in ("samples", "latent", "manifold"):  # the sample grid and the latent views
        assert any(key.startswith(image) for key in run.summary), image


def test_generate_one_label_and_all(trained, make_config, tmp_path):
    log_dir = trained["log_dir"]
    cfg = make_config("generate", ["latent_dim=4", "label=7", "num=9"], log_dir=log_dir)
    written = generate(cfg)
    assert imread(written["png"]).shape[:2] == (2 * (3 * 30 + 2), 2 * (3 * 30 + 2))  # 3×3 grid
    out = tmp_path / "samples.npz"
    cfg = make_config("generate", ["latent_dim=4", "label=all", "num=5", f"out={out}"], log_dir=log_dir)
    written = generate(cfg)
    with np.load(out) as saved:
        images, labels = saved["images"], saved["labels"]
    assert images.shape == (50, 28, 28) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert labels.dtype == np.int64 and labels.tolist() == [y for y in range(10) for _ in range(5)]
    assert written["png"] == str(out.with_suffix(".png"))
    generate(cfg)  # same sample_seed, same images
    with np.load(out) as again:
        assert np.array_equal(again["images"], images)


def test_failed_training_keeps_the_previous_artifacts(tmp_path):
    final = tmp_path / "art"
    with staged_folder(final) as stage:
        (stage / "vae.pt").write_text("good")
    with pytest.raises(RuntimeError), staged_folder(final) as stage:
        (stage / "vae.pt").write_text("half")
        raise RuntimeError("interrupted")
    assert (final / "vae.pt").read_text() == "good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]  # no staging folder left behind
    with staged_folder(final) as stage:
        (stage / "vae.pt").write_text("new")
    assert (final / "vae.pt").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["art"]


@pytest.mark.slow
def test_mmd_pipeline_with_csv_logger(make_config, tmp_path, tiny, tiny_judge):
    from catvae.train import train

    cfg = make_config(overrides=[*tiny, "vae=mmd", "logger=csv", "latent_dim=2", "classifier.epochs=1"])
    summary = json.loads(Path(train(cfg)).read_text())
    assert summary["key"] == {"data": "mnist", "vae": "mmd", "latent_dim": 2, "seed": 0}
    assert summary["vae_test"]["reg"] != summary["vae_test"]["kl"]  # MMD penalty, KL reported beside it
    metrics = (tmp_path / "logs" / "run" / "csv-train" / "version_0" / "metrics.csv").read_text()
    assert "vae/train/neg_elbo" in metrics and "classifier/train/acc" in metrics
    assert torch.load(tmp_path / "logs/artifacts/mnist/mmd-2/seed0/stats.pt")["mean"].shape == (10, 2)
