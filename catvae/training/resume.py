"""Resuming a killed training from each stage's Lightning checkpoint.

Each training stage keeps one checkpoint, rewritten atomically at the end of every epoch, in a
folder keyed like the artifacts: ``{paths.checkpoints_dir}/{data}/{vae}-{D}/seed{s}/{vae,classifier}/last.ckpt``.
When the same command runs again, a stage whose checkpoint was made by the same training config
continues from it (``Trainer.fit(ckpt_path=...)``); a finished stage's checkpoint restores its
weights without training another step. A successful publish removes the checkpoints.

The resumed run ends with the metrics of an uninterrupted one because every source of
randomness is restored, not only what Lightning keeps (weights, optimiser, LR schedule, loop
progress): the global torch RNG (the VAE's reparameterisation noise, the classifier's dropout)
goes into the checkpoint through :class:`ResumeState`, and the generator that shuffles each
epoch through the datamodule's ``state_dict`` (``catvae.data.datamodule``). Each stage is also
seeded on its own (:func:`seed_stage`), so no stage depends on how much randomness an earlier one
drew in this process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import pickle
import shutil
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins import TorchCheckpointIO

from catvae.artifacts import ArtifactKey
from catvae.core.files import atomic_write
from catvae.training.distributed import global_rank, is_global_zero

log = logging.getLogger(__name__)

# The stage's checkpoint folder holds the checkpoint it resumes from (or overwrites): expected here.
warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")

CHECKPOINT_FILE = "last.ckpt"

# Keys that change how a run is logged, stored or evaluated but not one weight it trains, so a
# checkpoint made under other values of them is still resumed.
NOT_TRAINING = ("logger", "paths", "run", "hydra", "eval", "generator", "objective", "resume")
NOT_TRAINING_TRAINER = ("enable_progress_bar", "callbacks", "enable_model_summary", "log_every_n_steps")
# What a stage does not depend on: the VAE is trained before (and without) the classifier.
NOT_STAGE = {"vae": ("classifier", "judge"), "classifier": ("judge",)}


def checkpoint_folder(key: ArtifactKey, checkpoints_dir: str | Path) -> Path:
    """Where the resume checkpoints of the artifact ``key`` live (one subfolder per stage), under ``paths.checkpoints_dir``."""
    return key.folder(checkpoints_dir)


@contextlib.contextmanager
def training_lock(key: ArtifactKey, checkpoints_dir: str | Path) -> Iterator[None]:
    """Hold the lock of the artifact ``key`` while it trains, or refuse to train.

    Two trainings of one key (the same command started twice, two jobs of a cluster array) would
    resume from and overwrite each other's checkpoints, then publish over each other. The lock is a
    file lock apart from the checkpoints (:func:`training_lock_file`), released by the kernel if the process dies, so a
    killed training never blocks the next. Under DDP only rank 0 takes it: the other ranks are that
    training's own processes. (Machines sharing ``paths.log_dir`` need a file system with working
    locks, e.g. NFSv4.)
    """
    from filelock import FileLock, Timeout

    from catvae.core.errors import UserError
    from catvae.training import distributed

    if not distributed.is_global_zero():
        yield
        return
    lock = FileLock(training_lock_file(key, checkpoints_dir))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UserError(
            f"another training of data={key.data} vae={key.vae} latent_dim={key.latent_dim} seed={key.seed} is running "
            f"(it holds {lock.lock_file}); wait for it to finish, or train another seed"
        ) from None
    try:
        yield
    finally:
        lock.release()


def training_lock_file(key: ArtifactKey, checkpoints_dir: str | Path) -> Path:
    """``{paths.checkpoints_dir}/.locks/<data>-<vae>-<D>-seed<s>.lock``: apart from the checkpoints, so
    removing a key's checkpoints (and its emptied folders) never removes a lock someone holds."""
    folder = Path(checkpoints_dir) / ".locks"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{key.data}-{key.vae}-{key.latent_dim}-seed{key.seed}.lock"


def training_fingerprint(config: Mapping[str, Any], stage: str) -> str:
    """A hash of the resolved config that ``stage`` trains under (``config``: plain containers, the
    command's whole config or the judge's :attr:`~catvae.training.settings.JudgeSettings.config`),
    less the keys that do not affect training."""
    ignored = (*NOT_TRAINING, *NOT_STAGE.get(stage, ()))
    kept: dict[str, Any] = {str(name): value for name, value in config.items() if str(name) not in ignored}
    if isinstance(kept.get("trainer"), Mapping):
        kept["trainer"] = {name: value for name, value in kept["trainer"].items() if name not in NOT_TRAINING_TRAINER}
    text = json.dumps({"stage": stage, "config": kept}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stage_seed(seed: int, stage: str) -> int:
    """A seed for ``stage`` derived from the run's ``seed`` (stable across processes and versions)."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{stage}".encode()).digest()[:4], "little")


def seed_stage(seed: int, stage: str) -> None:
    """Seed torch (and Python, NumPy) for ``stage`` alone, whatever ran before it in this process.

    Under DDP each rank above 0 gets a seed of its own, so the processes do not draw the same
    reparameterisation noise and dropout masks for their shares of a batch. Rank 0 keeps the
    one-process seed, and the weights every rank starts from are rank 0's (DDP copies them to
    the others), so a DDP run starts from the weights a one-process run starts from."""
    rank = global_rank()
    pl.seed_everything(stage_seed(int(seed), stage if rank == 0 else f"{stage}/rank{rank}"), workers=True, verbose=False)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer through :func:`catvae.core.files.atomic_write`.

    Lightning's own goes through a temporary file in the system's temp folder and ``shutil.move``,
    which copies when that folder is on another file system, so a kill mid-copy could leave a
    truncated ``last.ckpt``; here the previous checkpoint stays whole until the new one is.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        with atomic_write(path, binary=True) as handle:
            torch.save(checkpoint, handle)


class ResumeState(pl.Callback):
    """Puts into each checkpoint what Lightning leaves out: the training config's fingerprint and the
    global RNG state at the checkpoint (restored when the resumed run starts training).

    Under DDP every rank draws its own noise (:func:`seed_stage`), and rank 0 alone writes the
    checkpoint: the ranks' CPU RNG states are gathered into it (``torch_rng_ranks``), and a resumed
    run on as many processes gives each rank its own back."""

    def __init__(self, fingerprint: str):
        self.fingerprint = fingerprint
        self._restore: dict[str, Any] | None = None
        self._trainer: pl.Trainer | None = None

    @property
    def state_key(self) -> str:
        return "catvae.resume"

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer = trainer  # state_dict is given no trainer; under DDP it gathers the ranks' states

    def state_dict(self) -> dict[str, Any]:
        state = {"fingerprint": self.fingerprint, "torch_rng": torch.get_rng_state()}
        trainer = self._trainer
        if trainer is not None and trainer.world_size > 1:  # every rank dumps the checkpoint, rank 0 writes it
            mine = torch.get_rng_state().to(trainer.strategy.root_device)
            gathered = [torch.empty_like(mine) for _ in range(trainer.world_size)]
            torch.distributed.all_gather(gathered, mine)
            state["torch_rng_ranks"] = torch.stack(gathered).cpu()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Applied at ``on_train_start``, after Lightning's own setup, right before the next epoch.
        self._restore = state_dict

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._restore is None:
            return
        ranks = self._restore.get("torch_rng_ranks")
        if ranks is not None and len(ranks) == trainer.world_size:
            torch.set_rng_state(ranks[trainer.global_rank].cpu())
        else:
            torch.set_rng_state(self._restore["torch_rng"])
        if "cuda_rng" in self._restore and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(self._restore["cuda_rng"])
        self._restore = None


def epochs_done(checkpoint: dict[str, Any]) -> int:
    """How many training epochs a Lightning checkpoint has behind it (its fit loop's processed epochs;
    ``checkpoint["epoch"]`` is the index of the epoch it was written in)."""
    return int(checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])


def read_fingerprint(path: Path) -> tuple[str | None, int]:
    """The training fingerprint and the number of finished epochs recorded in a checkpoint."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = checkpoint.get("callbacks", {}).get("catvae.resume", {})
    return state.get("fingerprint"), epochs_done(checkpoint)


def resume_point(checkpoint_dir: Path, stage: str, max_epochs: int, fingerprint: str, resume: bool = True) -> str | None:
    """The checkpoint ``stage`` continues from, or None to start it over (always None when not ``resume``).

    Only a checkpoint made by the same training config (its ``fingerprint``, :func:`training_fingerprint`)
    is used; one made by another config, or that cannot be read, is removed (it would be overwritten
    by the first epoch anyway).
    """
    path = checkpoint_dir / stage / CHECKPOINT_FILE
    if not resume or not path.is_file():
        return None
    try:
        recorded, epochs = read_fingerprint(path)
    except (OSError, RuntimeError, EOFError, KeyError, TypeError, ValueError, pickle.UnpicklingError) as error:
        # A file we cannot use (truncated, another format, an older Lightning) is no reason to fail.
        log.warning("%s: cannot read the resume checkpoint %s (%s); starting it over", stage, path, error)
        remove(path)
        return None
    if recorded != fingerprint:
        log.warning("%s: the checkpoint %s was made by another training config; starting the stage over", stage, path)
        remove(path)
        return None
    if epochs >= max_epochs:
        log.info("%s: already trained (%d epochs) in %s; restoring it", stage, epochs, path)
    else:
        log.info("%s: resuming after epoch %d of %d from %s", stage, epochs, max_epochs, path)
    return str(path)


def remove(path: Path) -> None:
    """Remove a checkpoint that will not be resumed; on rank 0 only (under DDP every rank reads it,
    before the stage's ``fit`` joins them, and all come to the same answer)."""
    if is_global_zero():
        path.unlink(missing_ok=True)


def discard(checkpoint_dir: Path, why: str) -> None:
    """Remove the resume checkpoints of one artifact key (rank 0's job under DDP)."""
    if not is_global_zero():
        return
    if checkpoint_dir.exists():
        log.info("removing the resume checkpoints in %s (%s)", checkpoint_dir, why)
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    # And the key's folders above it (<data>/<vae>-<D>/) once nothing else is in them.
    for folder in list(checkpoint_dir.parents)[:2]:
        with contextlib.suppress(OSError):  # not empty: another key's checkpoints live there
            folder.rmdir()
