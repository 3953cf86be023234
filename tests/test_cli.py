"""The commands as a user runs them: bad input gets a clear message, a non-zero exit, no artifacts."""
import os
import subprocess
import sys

import pytest


def run(module: str, *overrides: str, log_dir) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "CATVAE_LOG_DIR": str(log_dir)}
    return subprocess.run([sys.executable, "-m", f"catvae.{module}", *overrides], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.mark.parametrize(("overrides", "message"), [
    (["vae=vq"], "Could not find 'vae/vq'"),
    (["latent_dim=0"], "latent_dim=0 is not allowed: a positive integer"),
    (["latent_dim=abc"], "latent_dim='abc' is not allowed: a positive integer"),
    (["latent_dim=2.5"], "latent_dim=2.5 is not allowed"),
    (["generator.theta=-0.5"], "generator.theta=-0.5 is not allowed: a number >= 0"),
    (["generator.n=0"], "generator.n=0 is not allowed: an integer >= 1"),
    (["vae.schedule=cosine"], "vae.schedule='cosine' is not allowed: one of constant, onecycle"),
    (["classifier.model.schedule=step"], "classifier.model.schedule='step' is not allowed: one of constant, onecycle"),
    (["eval.precision=fp8"], "eval.precision='fp8' is not allowed: one of auto, 32, bf16"),
    (["trainer.accelerator=tpu"], "trainer.accelerator='tpu' is not allowed: one of auto, cpu, gpu, cuda"),
])
def test_train_rejects_bad_input(tmp_path, overrides, message):
    result = run("train", *overrides, log_dir=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "artifacts").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize(("module", "override", "key"), [("train", "trainer=gpu", "trainer.accelerator"),
                                                        ("generate", "device=gpu", "device")])
def test_gpu_requested_without_a_gpu(tmp_path, module, override, key):
    result = run(module, override, log_dir=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{key}='gpu' is not allowed: auto or cpu: this machine has no CUDA GPU" in result.stderr
    assert not (tmp_path / "artifacts").exists()


def test_generate_without_artifacts_names_the_train_command(tmp_path):
    result = run("generate", "vae=mmd", "latent_dim=10", "label=7", log_dir=tmp_path)
    assert result.returncode == 2
    assert "python -m catvae.train data=mnist vae=mmd latent_dim=10 seed=0" in result.stderr


@pytest.mark.parametrize(("overrides", "message"), [
    (["label=12"], 'label=12 is not allowed: "all" or an integer label from 0 to 9'),
    (["label=seven"], "label='seven' is not allowed"),
    (["num=0"], "num=0 is not allowed: a positive integer"),
    (["out=samples.txt"], "out='samples.txt' is not allowed: a file name ending in .npz"),
])
def test_generate_rejects_bad_input(trained, overrides, message):
    result = run("generate", "latent_dim=4", *overrides, log_dir=trained["log_dir"])
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_generate_does_not_import_wandb_or_lightning(trained):
    code = ("import sys; from catvae.generate import generate; "
            "print(sorted(m for m in ('wandb', 'pytorch_lightning', 'optuna') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr
