"""What the training stages are told: typed settings, built once from a command's config.

:mod:`catvae.config.settings` reads the config's keys and builds these (one builder per class);
the stages (:mod:`catvae.training.stages`, :mod:`catvae.training.judge`) take them and never see
the config itself. ``_target_`` nodes (the data, the networks, the classifier, the densities, the
generator) travel as plain resolved dicts, built with :func:`catvae.core.targets.instantiate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from catvae.artifacts import ArtifactKey
from catvae.core.device import resolve_device
from catvae.evaluation.evaluator import EvaluationSettings


@dataclass(frozen=True)
class TrainerSettings:
    """The Lightning Trainer of every training stage (``conf/trainer``), and the processes it trains on."""

    node: Mapping[str, Any]  # ``trainer``'s resolved ``_target_`` node (its callbacks' nodes included)
    accelerator: str = "auto"  # trainer.accelerator: auto, cpu, gpu or cuda (catvae.core.device)
    precision: str = "32-true"  # trainer.precision (catvae.models.precision)
    callbacks: tuple[Mapping[str, Any], ...] = ()  # trainer.callbacks: _target_ nodes
    enable_progress_bar: bool = True  # trainer.enable_progress_bar: False drops the progress-bar callbacks
    devices: Any = 1  # trainer.devices (an int where it counts processes; anything else counts as one)
    num_nodes: Any = 1  # trainer.num_nodes
    strategy: str = "auto"  # trainer.strategy (catvae.training.distributed.STRATEGIES)

    @property
    def device(self) -> torch.device:
        """The device the Trainer trains on; the stages after training run there too."""
        return resolve_device(self.accelerator)

    @property
    def world_size(self) -> int:
        """How many processes train: ``devices × num_nodes`` (1 for the default trainer).

        Batch sizes in the config are global: each of the processes takes ``batch_size / world_size`` of
        every step's batch (:class:`catvae.data.datamodule.TensorBatches`), so a step averages the
        gradient over the same number of images, and an epoch has the same number of steps, as on one
        process; the paper's recipe (batch 100, its learning rate and schedule) is unchanged.
        """
        if isinstance(self.devices, int) and isinstance(self.num_nodes, int):
            return self.devices * self.num_nodes
        return 1  # refused by catvae.config.validate.check_distributed


@dataclass(frozen=True)
class Fitting:
    """How the training stages of one run fit and resume (:mod:`catvae.training.resume`)."""

    trainer: TrainerSettings
    seed: int  # the run's seed; each stage's own is derived from it (resume.seed_stage)
    checkpoint_dir: Path  # the key's resume checkpoints, one subfolder per stage
    resume: bool = True  # resume=false: start every stage over
    fingerprints: Mapping[str, str] = field(default_factory=dict)  # stage → resume.training_fingerprint


@dataclass(frozen=True)
class VAESettings:
    """The VAE (``vae``, ``latent_dim``): its networks, objective and optimiser, and how long it trains."""

    latent_dim: int  # D
    net: Mapping[str, Any]  # vae.net: the networks' _target_ node, given latent_dim, image_shape, num_classes
    objective: Mapping[str, Any]  # vae.objective: _target_ node (ELBO, MMD, …)
    lr: float  # vae.lr
    schedule: str  # vae.schedule
    epochs: int  # vae.epochs
    num_classes: int = 0  # data.num_classes when vae.conditional (the CVAE), else 0


@dataclass(frozen=True)
class ClassifierSettings:
    """Table 3's classifier trained on the VAE's reconstructions (``classifier``)."""

    model: Mapping[str, Any]  # classifier.model: the Lightning module's _target_ node (given image_shape)
    epochs: int
    batch_size: int


@dataclass(frozen=True)
class JudgeSettings:
    """The independent judge (:mod:`catvae.training.judge`): Table 3's classifier on real images.

    ``config`` is what the judge trains under and what its ``summary.json`` records as ``config``:
    the data split with the judge's seed, ``judge``, ``trainer``, ``eval.precision``, the paths, the
    seed and ``resume``; its checkpoint's fingerprint is made of it alone, so a judge killed inside
    ``catvae.train vae=elbo`` resumes in ``vae=mmd`` or in ``catvae.judge``."""

    seed: int  # judge.seed
    data: Mapping[str, Any]  # the data's _target_ node, split with the judge's seed
    data_name: str
    model: Mapping[str, Any]  # judge.model: _target_ node (given image_shape)
    epochs: int
    batch_size: int
    precision: str  # eval.precision: how its accuracies are taken (catvae.evaluation.evaluator.bf16_where)
    artifacts_dir: Path
    checkpoints_dir: Path
    trainer: TrainerSettings
    fingerprint: str  # resume.training_fingerprint of ``config`` for the stage "judge"
    resume: bool = True
    config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PipelineSettings:
    """One training pipeline (:func:`catvae.training.stages.run_pipeline`): the VAE, the classifier,
    the class densities, the judge and the evaluation of one generator, for one artifact key."""

    key: ArtifactKey
    data: Mapping[str, Any]  # the data module's _target_ node
    data_batch_size: int  # data.batch_size: the VAE's global batch
    fitting: Fitting
    vae: VAESettings
    classifier: ClassifierSettings
    judge: JudgeSettings
    densities: Mapping[str, Mapping[str, Any]]  # densities: name → _target_ node, every one fitted and published
    latent: str  # latent.name: the density this run evaluates
    generator: Mapping[str, Any]  # generator: _target_ node, from_search resolved
    evaluation: EvaluationSettings
    grid_per_label: int  # eval.grid_per_label: columns of samples.png
    artifacts_dir: Path  # paths.artifacts_dir: where the key's artifacts are published
    checkpoints_dir: Path  # paths.checkpoints_dir: the keys' resume checkpoints and training locks
    output_dir: Path  # paths.output_dir: the run's folder
    config: Mapping[str, Any]  # the command's whole resolved config: summary.json's "config", and its provenance's
