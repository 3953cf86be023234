"""The Lightning Trainer of every training stage (VAE, classifier, judge), built from ``cfg.trainer``."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar
from pytorch_lightning.loggers import Logger

from catvae.core.device import resolve_device
from catvae.core.targets import instantiate
from catvae.models.precision import precision_arguments
from catvae.training import resume
from catvae.training.divergence import DivergenceGuard


def make_trainer(cfg: DictConfig, stage: str, max_epochs: int, loggers: list[Logger], checkpoint_dir: Path) -> pl.Trainer:
    """A Trainer for one stage; it keeps one checkpoint, ``checkpoint_dir/stage/last.ckpt``, rewritten
    atomically at the end of each epoch, from which a killed run resumes (:mod:`catvae.training.resume`)."""
    # The newest checkpoint (top 1 with no monitor), always under one name. (save_last alone
    # writes only when a top-k checkpoint was written, i.e. with save_top_k=0 at the end of fit.)
    checkpoint = ModelCheckpoint(
        dirpath=checkpoint_dir / stage,
        filename=Path(resume.CHECKPOINT_FILE).stem,
        save_top_k=1,
        save_on_train_epoch_end=True,
        enable_version_counter=False,
    )
    arguments = precision_arguments(cfg.trainer.precision, training_device(cfg))
    arguments["plugins"] = [*arguments.get("plugins", []), resume.AtomicCheckpointIO()]
    return instantiate(
        cfg.trainer,
        max_epochs=max_epochs,
        logger=loggers or False,
        callbacks=[
            DivergenceGuard(stage),
            *configured_callbacks(cfg),
            checkpoint,
            resume.ResumeState(resume.training_fingerprint(cfg, stage)),
        ],
        **arguments,
    )


def configured_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    """``trainer.callbacks`` instantiated; a progress bar only when ``trainer.enable_progress_bar``."""
    callbacks = [instantiate(node) for node in cfg.trainer.get("callbacks") or []]
    if not cfg.trainer.get("enable_progress_bar", True):
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    return callbacks


def test_trainer(cfg: DictConfig, loggers: list[Logger]) -> pl.Trainer:
    """A Trainer for the VAE's test set: same device and loggers, fp32, so the reported nats do not
    depend on the training precision."""
    return instantiate(cfg.trainer, precision="32-true", logger=loggers or False, enable_progress_bar=False, callbacks=[])


def training_device(cfg: DictConfig) -> torch.device:
    """The device the Trainer trains on; the stages after training run there too."""
    return resolve_device(str(cfg.trainer.accelerator))
