"""Typed settings read once from a command's config and handed down to the layers that use them.

The one place that reads these keys of the config: each builder here turns the composed (and
validated) config into the settings class of the layer below that consumes them
(:mod:`catvae.training.settings`, :class:`catvae.evaluation.evaluator.EvaluationSettings`,
:class:`catvae.artifacts.ArtifactKey`). ``_target_`` nodes go down as plain resolved dicts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from catvae.artifacts import ArtifactKey
from catvae.core.provenance import plain_config
from catvae.evaluation.evaluator import EvaluationSettings
from catvae.training.resume import training_fingerprint
from catvae.training.settings import (
    ClassifierSettings,
    Fitting,
    JudgeSettings,
    PipelineSettings,
    TrainerSettings,
    VAESettings,
)

# The training stages of catvae.train, each with a resume fingerprint of its own.
PIPELINE_STAGES = ("vae", "classifier")


def plain(node: Any) -> Any:
    """A config node as plain containers, interpolations resolved (a plain value as it is)."""
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    """The whole config as plain containers, interpolations resolved: what a summary records as ``config``."""
    return cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))


def artifact_key(cfg: DictConfig) -> ArtifactKey:
    """The key named by ``data.name``, ``vae.name``, ``latent_dim`` and ``seed`` (ranges: :mod:`catvae.config.validate`)."""
    return ArtifactKey(str(cfg.data.name), str(cfg.vae.name), int(cfg.latent_dim), int(cfg.seed))


def evaluation_settings(cfg: DictConfig) -> EvaluationSettings:
    """How generators are scored: the config's ``eval`` (samples per label, seed, precision, sample
    metrics, CAS), ``objective`` (cos, classifier) and, where ``eval.cas``, CAS's recipe: the judge's
    (epochs, batch size, peak learning rate)."""
    evaluation, objective, judge = cfg.eval, cfg.objective, cfg.judge
    cas = None
    if evaluation.get("cas", False):
        cas = {"epochs": int(judge.epochs), "batch_size": int(judge.batch_size), "lr": float(judge.model.lr)}
    return EvaluationSettings(
        samples_per_label=int(evaluation.samples_per_label),
        seed=int(evaluation.seed),
        cos=str(objective.cos),
        precision=str(evaluation.get("precision", "auto")),
        sample_metric_groups=tuple(group if isinstance(group, str) else plain(group) for group in evaluation.sample_metrics),
        objective_classifier=str(objective.classifier),
        cas=cas,
    )


def trainer_settings(cfg: DictConfig) -> TrainerSettings:
    """The Trainer of every stage: ``trainer`` (its resolved node, accelerator, precision, callbacks,
    progress bar, and the processes it trains on)."""
    trainer = cfg.trainer
    devices = OmegaConf.select(cfg, "trainer.devices", default=1)
    nodes = OmegaConf.select(cfg, "trainer.num_nodes", default=1)
    return TrainerSettings(
        node=plain(trainer),
        accelerator=str(trainer.accelerator),
        precision=str(trainer.precision),
        callbacks=tuple(plain(node) for node in trainer.get("callbacks") or []),
        enable_progress_bar=bool(trainer.get("enable_progress_bar", True)),
        devices=plain(devices),
        num_nodes=plain(nodes),
        strategy=str(OmegaConf.select(cfg, "trainer.strategy", default="auto")),
    )


def judge_config(cfg: DictConfig) -> dict[str, Any]:
    """What the judge trains under, taken from a train or judge config: the data (split with the
    judge's seed, so ``catvae.train`` and ``catvae.judge`` train the same judge), ``judge``,
    ``trainer``, ``eval.precision``, the paths, ``seed`` = ``judge.seed`` and ``resume``: its
    summary's ``config``, and all its checkpoint's fingerprint is made of."""
    seed = int(cfg.judge.seed)
    return {
        "data": plain(cfg.data) | {"seed": seed},
        "judge": plain(cfg.judge),
        "trainer": plain(cfg.trainer),
        "eval": {"precision": str(cfg.eval.precision)},
        "paths": {"artifacts_dir": str(cfg.paths.artifacts_dir), "checkpoints_dir": str(cfg.paths.checkpoints_dir)},
        "seed": seed,
        "resume": bool(cfg.get("resume", True)),
    }


def judge_settings(cfg: DictConfig) -> JudgeSettings:
    """The judge of a train or judge config (:func:`judge_config`), as :mod:`catvae.training.judge` takes it."""
    config = judge_config(cfg)
    judge = config["judge"]
    return JudgeSettings(
        seed=config["seed"],
        data=config["data"],
        data_name=str(config["data"]["name"]),
        model=judge["model"],
        epochs=int(judge["epochs"]),
        batch_size=int(judge["batch_size"]),
        precision=config["eval"]["precision"],
        artifacts_dir=Path(config["paths"]["artifacts_dir"]),
        checkpoints_dir=Path(config["paths"]["checkpoints_dir"]),
        trainer=trainer_settings(cfg),
        fingerprint=training_fingerprint(config, "judge"),
        resume=config["resume"],
        config=config,
    )


def run_config(cfg: DictConfig) -> dict[str, Any]:
    """The command's config as its summaries' provenance records it (:func:`catvae.core.provenance.plain_config`:
    resolved, an interpolation only Hydra resolves kept as written)."""
    return cast(dict[str, Any], plain_config(cfg))


def vae_settings(cfg: DictConfig) -> VAESettings:
    """The VAE: ``latent_dim``, ``vae`` (net, objective, lr, schedule, epochs) and, for the CVAE
    (``vae.conditional``), ``data.num_classes``."""
    vae = cfg.vae
    return VAESettings(
        latent_dim=int(cfg.latent_dim),
        net=plain(vae.net),
        objective=plain(vae.objective),
        lr=float(vae.lr),
        schedule=str(vae.schedule),
        epochs=int(vae.epochs),
        num_classes=int(cfg.data.num_classes) if vae.conditional else 0,
    )


def classifier_settings(cfg: DictConfig) -> ClassifierSettings:
    """Table 3's classifier on reconstructions: ``classifier`` (model, epochs, batch size)."""
    classifier = cfg.classifier
    return ClassifierSettings(model=plain(classifier.model), epochs=int(classifier.epochs), batch_size=int(classifier.batch_size))


def pipeline_settings(cfg: DictConfig) -> PipelineSettings:
    """Everything :func:`catvae.training.stages.run_pipeline` needs of a (validated) train config."""
    key = artifact_key(cfg)
    config = resolved_config(cfg)
    fitting = Fitting(
        trainer=trainer_settings(cfg),
        seed=int(cfg.seed),
        checkpoint_dir=key.folder(cfg.paths.checkpoints_dir),
        resume=bool(cfg.get("resume", True)),
        fingerprints={stage: training_fingerprint(config, stage) for stage in PIPELINE_STAGES},
    )
    return PipelineSettings(
        key=key,
        data=plain(cfg.data),
        data_batch_size=int(cfg.data.batch_size),
        fitting=fitting,
        vae=vae_settings(cfg),
        classifier=classifier_settings(cfg),
        judge=judge_settings(cfg),
        densities={str(name): plain(node) for name, node in cfg.densities.items()},
        latent=str(cfg.latent.name),
        generator=plain(cfg.generator),
        evaluation=evaluation_settings(cfg),
        grid_per_label=int(cfg.eval.grid_per_label),
        artifacts_dir=Path(cfg.paths.artifacts_dir),
        checkpoints_dir=Path(cfg.paths.checkpoints_dir),
        output_dir=Path(cfg.paths.output_dir),
        config=config,
    )
