"""Every config group composes, and what it names instantiates."""

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger, WandbLogger

from catvae.config.registry import CONF_DIR, instantiate, wandb_offline
from catvae.core.loggers import build_loggers
from catvae.data.datamodule import ImageDataModule
from catvae.generators.gaussian import Medium1, Medium2, Simple, build_generator
from catvae.models import objectives
from catvae.models.classifier import Classifier


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (Path(CONF_DIR) / group).glob("*.yaml"))


def test_groups_are_the_expected_ones():
    assert options("vae") == ["cvae", "elbo", "elbo_conv", "mmd", "mmd_conv"]
    assert options("data") == ["fashion_mnist", "idx", "mnist"]
    assert options("logger") == ["csv", "none", "wandb"]
    assert options("trainer") == ["cpu", "ddp", "default", "gpu"]
    assert options("generator") == ["medium1", "medium2", "simple"]
    assert options("search") == ["gradient", "none", "optuna", "paper_grid"]
    assert options("latent") == ["diag", "full", "gmm", "kde", "prior"]


@pytest.mark.parametrize(("generator", "cls"), [("simple", Simple), ("medium1", Medium1), ("medium2", Medium2)])
def test_generators(make_config, generator, cls):
    built = build_generator(make_config("search_job", [f"generator={generator}"]).generator)
    assert type(built) is cls and built.name == generator


@pytest.mark.parametrize("search", options("search"))
def test_search_configs(make_config, search):
    cfg = make_config(
        "search_job",
        [f"search={search}", "generator=medium1"],
    )
    assert cfg.eval.samples_per_label == 1000 and cfg.run.kind == "search"
    if search == "optuna":
        assert cfg.search.theta_step == 0.1 and cfg.search.storage_url.startswith("sqlite:///")


# vae option: objective, arch, hidden, conditional, epochs
VAES = {
    "elbo": ("elbo", "mlp", [500, 500], False, 25),
    "mmd": ("mmd", "mlp", [500, 500], False, 25),
    "elbo_conv": ("elbo", "conv", [], False, 8),
    "mmd_conv": ("mmd", "conv", [], False, 8),
    "cvae": ("elbo", "mlp", [500, 500], True, 25),
}


def test_every_vae_option_is_described():
    assert sorted(VAES) == options("vae")


@pytest.mark.parametrize("vae", options("vae"))
def test_vae_objectives(make_config, vae):
    cfg = make_config(overrides=[f"vae={vae}"])
    objective = instantiate(cfg.vae.objective)
    name, arch, hidden, conditional, epochs = VAES[vae]
    assert objective.name == name and cfg.vae.name == vae
    assert isinstance(objective, {"elbo": objectives.ELBO, "mmd": objectives.MMD}[name])
    net = cfg.vae.net._target_.removeprefix("catvae.models.networks.").removesuffix("_networks")
    assert (net, list(cfg.vae.net.hidden), cfg.vae.conditional, cfg.vae.epochs) == (arch, hidden, conditional, epochs)
    assert (cfg.vae.lr, cfg.vae.schedule) == (3e-3, "onecycle")


def test_data_mnist_and_idx(make_config, tmp_path):
    data = instantiate(make_config().data)
    assert isinstance(data, ImageDataModule) and data.name == "mnist" and data.num_classes == 10
    folder = tmp_path / "fashion"
    cfg = make_config(overrides=["data=idx", f"data.root={folder}"])
    assert cfg.data.name == "idx-fashion"
    assert instantiate(cfg.data).source.keywords["root"] == str(folder)


@pytest.mark.slow
def test_classifier_generator_trainers(make_config):
    cfg = make_config()
    assert isinstance(instantiate(cfg.classifier.model), Classifier)
    generator = build_generator(cfg.generator)
    assert isinstance(generator, Simple) and (generator.theta, generator.n) == (0.4, 2)
    for trainer in ("default", "cpu") + (("gpu",) if torch.cuda.is_available() else ()):
        assert isinstance(instantiate(make_config(overrides=[f"trainer={trainer}"]).trainer), pl.Trainer)
    assert make_config(overrides=["trainer=gpu"]).trainer.accelerator == "gpu"


def test_loggers(make_config):
    (wandb,) = build_loggers(make_config(overrides=["logger=wandb"]).logger)
    assert isinstance(wandb, WandbLogger)
    (csv,) = build_loggers(make_config(overrides=["logger=csv"]).logger)
    assert isinstance(csv, CSVLogger)
    assert build_loggers(make_config(overrides=["logger=none"]).logger) == []


def test_generate_config_composes(make_config):
    cfg = make_config("generate", ["label=3", "num=5"])
    assert (cfg.label, cfg.num, cfg.vae.name, cfg.latent_dim) == (3, 5, "elbo", 20)


def test_wandb_offline_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "online")
    assert wandb_offline() is False
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_offline() is True
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert wandb_offline() is True
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    assert wandb_offline() is False


def test_a_multirun_groups_its_runs_by_its_folder(tmp_path):
    """W&B across processes and launchers: every job of a training grid is in one group (the
    multirun folder's name); a single run keeps the model family's group."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    overrides = [f"paths.log_dir={tmp_path}", "hydra.sweep.dir=/runs/train/multiruns/grid-7"]
    saved = HydraConfig.instance().cfg
    try:
        for mode, group in ((RunMode.RUN, "mnist-elbo-20"), (RunMode.MULTIRUN, "grid-7")):
            with initialize_config_dir(config_dir=CONF_DIR):
                cfg = compose("train", overrides=[*overrides, f"hydra.mode={mode.name}"], return_hydra_config=True)
            HydraConfig.instance().set_config(cfg)
            assert cfg.run.group == group
    finally:
        HydraConfig.instance().cfg = saved
