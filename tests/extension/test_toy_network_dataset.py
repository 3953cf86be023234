"""Extension by configuration (issue 15, part 2): a toy network, a toy dataset and a toy sample
metric added from this folder only (``toy_network.py``, ``toy_dataset.py``, ``toy_metric.py`` and
the YAML under ``conf/``, found through Hydra's search path; their packages trusted by
``extra_trusted_targets``), with no edit under ``catvae/``, run through train → search (one grid
job) → generate from the command line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch
from helpers import command_env, run_command

pytestmark = pytest.mark.slow  # trainings of their own: outside the fast loop

HERE = Path(__file__).resolve().parent
EXTENSION = [
    f"hydra.searchpath=[file://{HERE / 'conf'}]",
    "extra_trusted_targets=[toy_network.*,toy_dataset.*,toy_metric.*]",
    "data=toy_rgb",
]
TINY = [
    "data.limit_train=1200",
    "data.limit_test=300",
    "data.val_size=200",
    "vae.epochs=1",
    "classifier.epochs=1",
    "judge.epochs=1",
    "eval.samples_per_label=12",
    "eval.grid_per_label=4",
    "latent_dim=4",
    "eval.cas=false",
    "trainer.enable_progress_bar=false",
    "logger=none",
]
PAD, SCALE, SIDE = 2, 2, 32  # catvae.core.images: 2 pixels between images, each pixel drawn 2×2


def run(module: str, log_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = command_env(log_dir, pythonpath=[HERE])  # the toy modules importable, as a user's PYTHONPATH would make them
    result = run_command(module, *EXTENSION, *overrides, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def grid_side(count: int) -> int:
    """Pixels along a grid of ``count`` toy images (catvae.core.images.tile, then enlarged)."""
    return (count * (SIDE + PAD) + PAD) * SCALE


def job_samples(log_dir: Path, result: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The images a search job of generator=simple scored: its samples per label, drawn with its seed
    from the diagonal class density of the toy models (as catvae.evaluation.evaluator draws them)."""
    from catvae.artifacts import ArtifactKey, load_models
    from catvae.core.targets import TRUSTED_TARGETS, trust
    from catvae.generators.gaussian import Simple, target_labels

    saved = list(TRUSTED_TARGETS)
    trust(["toy_network.*"])  # this process rebuilds the toy network from vae.pt too
    try:
        models = load_models(ArtifactKey("toy_rgb", "elbo", 4, 0), log_dir / "artifacts")
    finally:
        TRUSTED_TARGETS[:] = saved
    labels = target_labels(10, result["samples_per_label"])
    codes = Simple(theta=result["theta"], n=result["n"]).sample(
        models.stats, labels, torch.Generator().manual_seed(result["seed"])
    )
    return models.decoder.images(codes, labels), labels


def test_toy_network_on_toy_dataset_train_search_generate(tmp_path):
    log_dir = tmp_path / "logs"
    run("catvae.train", log_dir, *TINY, "vae=elbo", "vae/net=toy")
    folder = log_dir / "artifacts" / "toy_rgb" / "elbo-4" / "seed0"
    stored = torch.load(folder / "vae.pt", weights_only=True)
    # The resolved node of the toy network, with the data's image shape: what rebuilds it.
    assert stored["net"] == {
        "_target_": "toy_network.linear_networks",
        "latent_dim": 4,
        "image_shape": [3, 32, 32],
        "num_classes": 0,
    }
    assert stored["encoder"]["linear.weight"].shape == (8, 3 * 32 * 32)
    assert stored["decoder"]["linear.weight"].shape == (3 * 32 * 32, 4)
    classifier = torch.load(folder / "classifier.pt", weights_only=True)
    assert classifier["image_shape"] == [3, 32, 32]
    assert classifier["state_dict"]["net.0.weight"].shape == (32, 3, 3, 3)  # Table 3's first layer takes 3 channels
    assert classifier["state_dict"]["net.7.weight"].shape == (128, 64 * 14 * 14)  # (32 − 4) / 2 = 14
    # samples.png: 10 labelled rows of eval.grid_per_label=4 images of 32×32 (the names in a left margin).
    samples = matplotlib.image.imread(folder / "samples.png")
    assert samples.shape[0] == grid_side(10)

    search = run(
        "catvae.search", log_dir, "-m", "vae=elbo", "latent_dim=4", "generator=simple", "generator.theta=0.5",
        "eval.samples_per_label=12", "data.limit_train=1200", "data.limit_test=300", "data.val_size=200",
        "eval.sample_metrics=[fid,{_target_:toy_metric.MeanBrightness}]",
    )  # fmt: skip
    sweep = Path(search.stdout.strip().splitlines()[-1].removeprefix("sweep summary: "))
    result = json.loads((sweep / "0" / "result.json").read_text())
    assert result["samples_per_label"] == 12 and result["theta"] == 0.5 and "fid" in result
    assert 0.0 <= result["accuracy"] <= 1.0 and 0.0 <= result["judge_accuracy"] <= 1.0
    # The toy metric by hand: the job's samples drawn again from the published models, their mean pixel.
    images, labels = job_samples(log_dir, result)
    assert abs(result["brightness"] - float(images.double().mean())) < 1e-5
    three = images[labels == 3].double().mean()
    assert abs(result["per_label"]["3"]["brightness"] - float(three)) < 1e-5

    out = tmp_path / "threes.npz"
    run("catvae.generate", log_dir, "vae=elbo", "latent_dim=4", "label=3", "num=5", f"out={out}")
    with np.load(out) as saved:
        images, labels = saved["images"], saved["labels"]
    assert images.shape == (5, 3, 32, 32) and labels.tolist() == [3] * 5  # the toy dataset's shape, from vae.pt
    assert images.min() >= 0.0 and images.max() <= 1.0
    grid = matplotlib.image.imread(out.with_suffix(".png"))
    assert grid.shape[:2] == (grid_side(2), grid_side(3)) and grid.shape[2] in (3, 4)  # 5 images: 2 rows of 3, in colour


def test_conv_networks_train_on_toy_rgb_32x32(tmp_path):
    log_dir = tmp_path / "logs"
    run("catvae.train", log_dir, *TINY, "vae=elbo_conv", "latent_dim=2")
    folder = log_dir / "artifacts" / "toy_rgb" / "elbo_conv-2" / "seed0"
    stored = torch.load(folder / "vae.pt", weights_only=True)
    assert stored["net"]["_target_"] == "catvae.models.networks.conv_networks" and stored["net"]["image_shape"] == [3, 32, 32]
    assert stored["encoder"]["conv.0.weight"].shape == (32, 3, 4, 4)  # 3 → 32 → 64 channels, 32 → 16 → 8
    assert stored["encoder"]["head.0.weight"].shape == (4, 64 * 8 * 8)
    assert stored["decoder"]["deconv.3.weight"].shape == (32, 3, 4, 4)  # back to 3 maps of logits
    summary = json.loads((folder / "summary.json").read_text())
    assert 0 < summary["vae_test"]["recon"] < 3 * 32 * 32 * np.log(2) * 2  # nats per image, finite
    out = tmp_path / "conv.npz"
    run("catvae.generate", log_dir, "vae=elbo_conv", "latent_dim=2", "label=all", "num=2", f"out={out}")
    with np.load(out) as saved:
        assert saved["images"].shape == (20, 3, 32, 32)
