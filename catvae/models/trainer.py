"""A Lightning Trainer for a short fit inside a running process (CAS's classifier,
:func:`catvae.evaluation.sample_metrics.train_cas_classifier`).

The training stages build theirs from ``cfg.trainer`` (:func:`catvae.training.stages.make_trainer`:
checkpoints to resume from, loggers, a progress bar, a divergence guard, validation). A fit that
lasts seconds inside an evaluation needs none of that: this one has no checkpoint, logger,
progress bar, model summary or validation loop, runs on the one device it is given (also under
DDP: only rank 0 evaluates, ``catvae.training.distributed``), and takes the precision plugin
from the same place as the stages' (:func:`catvae.models.precision.precision_arguments`), so
``bf16-mixed`` caches autocast's weight casts here too. Lightning's console lines (the devices
it found, "``Trainer.fit`` stopped") are held back while it is built and fits: a search that
scores CAS many times would print them every time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytorch_lightning as pl
import torch
from pytorch_lightning.strategies import SingleDeviceStrategy

from catvae.models.precision import precision_arguments

LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric")


def accelerator_name(device: torch.device) -> str:
    """Lightning's accelerator name for a torch device type (``cuda`` is ``gpu``)."""
    return "gpu" if device.type == "cuda" else device.type


def quiet_trainer(max_epochs: int, device: torch.device, precision: str = "32-true") -> pl.Trainer:
    """A Trainer that fits for ``max_epochs`` on ``device`` with ``precision`` (``32-true`` or
    ``bf16-mixed``) and does nothing else: no checkpointing, loggers, progress bar, model summary,
    sanity check or validation. Seeding is the caller's (``torch.manual_seed`` before the module is
    built; the data module's shuffling generator)."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return pl.Trainer(
        accelerator=accelerator_name(device),
        # One given device, whatever a DDP launcher left in the environment.
        strategy=SingleDeviceStrategy(device=device),
        max_epochs=max_epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        **precision_arguments(precision, device),
    )


@contextmanager
def lightning_quiet() -> Iterator[None]:
    """Lightning's INFO lines (devices found, "``Trainer.fit`` stopped") held back inside the block;
    its warnings still show."""
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
