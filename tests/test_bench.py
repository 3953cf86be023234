"""``python -m catvae.bench`` at tiny sizes: it runs and writes every figure it promises (speed is never asserted)."""

import json

import pytest
from helpers import run_command

from catvae.bench import vae_step_flops


def test_vae_step_flops_by_hand():
    # D=2, hidden [3]: encoder 784-3-4, decoder 2-3-784. Forward 2·in·out per layer; backward the
    # same for weights and inputs, except the input gradient of the encoder's first layer.
    encoder = 2 * 784 * 3 * 2 + 2 * 3 * 4 * 3
    decoder = 2 * 2 * 3 * 3 + 2 * 3 * 784 * 3
    assert vae_step_flops(2, [3], batch=5) == 5 * (encoder + decoder)


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
    assert (bench["bf16_speedup"] is None) == ("bf16" not in cpu["vae"])
    scaling = cpu["scaling"]
    assert [row["samples_per_label"] for row in scaling["search_by_samples_per_label"]] == [4, 8]
    assert scaling["vae_epoch_by_latent_dim"][0]["latent_dim"] == 2
    assert all(row["peak_mb"] > 0 for row in scaling["vae_epoch_by_batch_size"])
    assert "lightning_vs_plain (VAE, default precision)" in result.stdout
