"""The Lightning Trainer of every training stage (VAE, classifier, judge), built from its :class:`TrainerSettings`."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar
from pytorch_lightning.loggers import Logger

from catvae.core.targets import instantiate
from catvae.models.precision import precision_arguments
from catvae.training import resume
from catvae.training.divergence import DivergenceGuard
from catvae.training.settings import TrainerSettings


def make_trainer(
    trainer: TrainerSettings, stage: str, max_epochs: int, loggers: list[Logger], checkpoint_dir: Path, fingerprint: str
) -> pl.Trainer:
    """A Trainer for one stage; it keeps one checkpoint, ``checkpoint_dir/stage/last.ckpt``, rewritten
    atomically at the end of each epoch, from which a killed run resumes (:mod:`catvae.training.resume`);
    ``fingerprint`` (:func:`~catvae.training.resume.training_fingerprint`) goes into it."""
    # The newest checkpoint (top 1 with no monitor), always under one name. (save_last alone
    # writes only when a top-k checkpoint was written, i.e. with save_top_k=0 at the end of fit.)
    checkpoint = ModelCheckpoint(
        dirpath=checkpoint_dir / stage,
        filename=Path(resume.CHECKPOINT_FILE).stem,
        save_top_k=1,
        save_on_train_epoch_end=True,
        enable_version_counter=False,
    )
    arguments = precision_arguments(trainer.precision, trainer.device)
    arguments["plugins"] = [*arguments.get("plugins", []), resume.AtomicCheckpointIO()]
    return instantiate(
        trainer.node,
        max_epochs=max_epochs,
        logger=loggers or False,
        callbacks=[
            DivergenceGuard(stage),
            *configured_callbacks(trainer),
            checkpoint,
            resume.ResumeState(fingerprint),
        ],
        **arguments,
    )


def configured_callbacks(trainer: TrainerSettings) -> list[pl.Callback]:
    """``trainer.callbacks`` instantiated; a progress bar only when ``trainer.enable_progress_bar``."""
    callbacks = [instantiate(node) for node in trainer.callbacks]
    if not trainer.enable_progress_bar:
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    return callbacks


def test_trainer(trainer: TrainerSettings, loggers: list[Logger]) -> pl.Trainer:
    """A Trainer for the VAE's test set: same device and loggers, fp32, so the reported nats do not
    depend on the training precision."""
    return instantiate(trainer.node, precision="32-true", logger=loggers or False, enable_progress_bar=False, callbacks=[])
