"""Training on several processes (``trainer=ddp``): who writes, what every rank must agree on.

Lightning's DDP strategy runs each training stage's ``fit`` on ``trainer.devices × trainer.num_nodes``
processes. With its subprocess launcher (one node) the process the user started is rank 0, and the
first ``fit`` starts the others by running the same command again (``LOCAL_RANK=1 python -m
catvae.train … hydra.run.dir=<rank 0's run folder> hydra.output_subdir=null``); under ``srun`` or
``torchrun`` every process is started from outside. Either way each process runs the whole command,
so the pipeline asks here which rank it is:

- every rank takes part in every Lightning ``fit`` and ``test`` (DDP's collectives need them all);
- only rank 0 runs the stages after training (class densities, evaluation, views), publishes the
  artifacts and summaries, removes resume checkpoints and keeps the W&B run (Lightning's loggers
  and checkpoint writer already do nothing on other ranks);
- a decision a rank cannot take alone (train the judge or not) is rank 0's, sent to the others
  (:func:`broadcast`).

The rank is known before the first ``fit``: Lightning reads it from the environment when it is
imported (``RANK`` from torchrun, ``SLURM_PROCID`` from srun, ``LOCAL_RANK`` from its own launcher)
and corrects it when a Trainer sets up its strategy.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import torch

if TYPE_CHECKING:
    from catvae.training.settings import TrainerSettings

T = TypeVar("T")

# What the config may set as trainer.strategy: Lightning picks DDP itself for several devices under
# "auto". Other strategies (ddp_spawn, ddp_notebook, fsdp, deepspeed) are untested here; spawn
# strategies also cannot carry the in-memory data module to new processes.
STRATEGIES = ("auto", "ddp")

# The batch sizes that are split across the processes (see :attr:`catvae.training.settings.TrainerSettings.world_size`).
BATCH_KEYS = {"vae": "data.batch_size", "classifier": "classifier.batch_size", "judge": "judge.batch_size"}


def global_rank() -> int:
    """This process's rank among all training processes (0 when training on one)."""
    from pytorch_lightning.utilities.rank_zero import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0))


def is_global_zero() -> bool:
    """Whether this process writes: the only one when training on one process, rank 0 under DDP."""
    return global_rank() == 0


def quiet_console() -> None:
    """On ranks above 0, show only warnings and errors on the console: the user's terminal shows rank
    0's progress once, not once per process. Each rank's full log still goes to its file in the run
    folder (Hydra's ``<job name>.log``; Lightning's launcher names rank r's job ``train_ddp_process_r``)."""
    if is_global_zero():
        return
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.WARNING)


def is_distributed() -> bool:
    """Whether a process group joins this process to others (after the first DDP ``fit``)."""
    return torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1


def broadcast(value: T) -> T:
    """Rank 0's ``value`` on every rank (``value`` itself when not distributed): a picklable object."""
    if not is_distributed():
        return value
    box: list[Any] = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def summary_block(trainer: TrainerSettings, batch_sizes: Mapping[str, int]) -> dict[str, Any]:
    """What a summary says of the processes that trained: their number
    (:attr:`~catvae.training.settings.TrainerSettings.world_size`), the collective backend, and each
    stage's global batch (``batch_sizes``: stage → batch, in the order the summary lists them) and
    the share of it each process took."""
    world = trainer.world_size
    block: dict[str, Any] = {
        "world_size": world,
        "num_nodes": int(trainer.num_nodes or 1),
        "strategy": str(trainer.strategy),
        "backend": torch.distributed.get_backend() if is_distributed() else None,
        "batch_size": {},
    }
    for stage, batch in batch_sizes.items():
        block["batch_size"][stage] = {"global": int(batch), "per_process": int(batch) // world}
    return block
