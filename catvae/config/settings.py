"""Typed settings read once from a command's config and handed down to the layers that use them.

The one place that reads these keys of the config: each builder here turns the composed (and
validated) config into the settings class of the layer below that consumes them
(:mod:`catvae.training.settings`, :class:`catvae.evaluation.evaluator.EvaluationSettings`,
:class:`catvae.artifacts.ArtifactKey`). ``_target_`` nodes go down as plain resolved dicts.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, cast

import torch
from omegaconf import DictConfig, OmegaConf

from catvae.config.keys import artifact_key
from catvae.config.schema import GradientSearchConfig, OptunaSearchConfig
from catvae.config.validate import search_method as search_schema
from catvae.core.device import resolve_device
from catvae.core.provenance import plain_config, provenance
from catvae.evaluation.evaluator import EvaluationSettings, bf16_where
from catvae.sweep.settings import (
    GradientSettings,
    GridSearch,
    OptunaSearch,
    ScoredModels,
    SearchJob,
    SearchMethod,
    StudyTrial,
    SweepSummarySettings,
    trial_samples,
)
from catvae.sweep.space import ThetaSpace, theta_names
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


def plain(node: Any, resolve: bool = True) -> Any:
    """A config node as plain containers, interpolations resolved unless ``resolve=False`` (a plain value as it is)."""
    return OmegaConf.to_container(node, resolve=resolve) if OmegaConf.is_config(node) else node


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    """The whole config as plain containers, interpolations resolved: what a summary records as ``config``."""
    return cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))


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


# ------------------------------------------------------------------ search (catvae.sweep.settings) -----------------
# The settings of catvae.search, of its sweep's callbacks and of the sweeper's hooks: one builder per
# class of catvae.sweep.settings (and catvae.sweep.space.ThetaSpace), each reading the composed config
# once (its ranges checked by catvae.config.validate.validate_search).


def scored_models(cfg: DictConfig) -> ScoredModels:
    """The trained models ``data``, ``vae``, ``latent_dim`` and ``seed`` name, on ``device=``, and the
    judge (``judge.seed``) with the data its real images come from."""
    key = artifact_key(cfg)
    device = resolve_device(str(cfg.device), "device")
    return ScoredModels(
        key=key,
        artifacts_dir=str(cfg.paths.artifacts_dir),
        device=device,
        data=plain(cfg.data),
        judge_seed=int(cfg.judge.seed),
        bf16=bf16_where(str(cfg.eval.precision), device),
    )


def grid_search(cfg: DictConfig) -> GridSearch:
    """``search=none`` or ``search=paper_grid``: only the search's name."""
    return GridSearch(name=str(cfg.search.name))


def optuna_search(cfg: DictConfig) -> OptunaSearch:
    """``search=optuna``: θ's range, the cheap trials and how many of the best are re-scored."""
    search = cfg.search
    step, samples = search.get("theta_step"), search.get("trial_samples_per_label")
    return OptunaSearch(
        name=str(search.name),
        theta_low=float(search.theta_low),
        theta_high=float(search.theta_high),
        theta_step=None if step is None else float(step),
        trial_samples_per_label=None if samples is None else int(samples),
        rescore_top=int(search.get("rescore_top") or 0),
    )


def gradient_settings(cfg: DictConfig, device: torch.device) -> GradientSettings:
    """``search=gradient``: the front's weights and each point's optimiser; bf16 autocast where the
    classifier scores in bf16 on the CPU (``eval.precision`` on ``device``)."""
    search = cfg.search
    return GradientSettings(
        weights=tuple(float(w) for w in search.weights),
        steps=int(search.steps),
        lr=float(search.lr),
        batch_per_label=int(search.batch_per_label),
        theta_init=float(search.theta_init),
        theta_high=float(search.theta_high),
        bf16=bf16_where(str(cfg.eval.precision), device) and device.type == "cpu",
        name=str(search.name),
    )


def search_method(cfg: DictConfig, device: torch.device) -> SearchMethod:
    """The settings of the search's method, by its schema (:func:`catvae.config.validate.search_method`)."""
    schema = search_schema(cfg.search)
    if schema is OptunaSearchConfig:
        return optuna_search(cfg)
    if schema is GradientSearchConfig:
        return gradient_settings(cfg, device)
    return grid_search(cfg)


def search_job(cfg: DictConfig, trial: StudyTrial | None = None) -> SearchJob:
    """One job of ``python -m catvae.search`` (or a gradient search's run), from its validated config;
    ``trial``: the Optuna trial it scores (:func:`catvae.config.sweeper.study_trial`)."""
    models = scored_models(cfg)
    return SearchJob(
        models=models,
        generator=plain(cfg.generator),
        latent=str(cfg.latent.name),
        evaluation=evaluation_settings(cfg),
        method=search_method(cfg, models.device),
        records_dir=str(cfg.paths.search_records_dir),
        output_dir=str(cfg.paths.output_dir),
        eval_config=plain(cfg.eval, resolve=False),
        objective_config=plain(cfg.objective, resolve=False),
        wandb="wandb" in (cfg.get("logger") or {}),
        provenance=functools.partial(provenance, run_config(cfg), models.device),
        trial=trial,
    )


def sweep_summary_settings(cfg: DictConfig) -> SweepSummarySettings:
    """What the summary of a search multirun (or of its Optuna study) needs, from the sweep's config."""
    models = scored_models(cfg)
    evaluation = evaluation_settings(cfg)
    method = search_method(cfg, models.device)
    cheap_trials = trial_samples(method, evaluation.samples_per_label) < evaluation.samples_per_label
    return SweepSummarySettings(
        models=models,
        latent=str(cfg.latent.name),
        evaluation=evaluation,
        records_dir=str(cfg.paths.search_records_dir),
        log_dir=str(cfg.paths.log_dir),
        wandb="wandb" in (cfg.get("logger") or {}),
        rescore_top=method.rescore_top if cheap_trials and isinstance(method, OptunaSearch) else 0,
    )


def theta_space(cfg: DictConfig) -> ThetaSpace:
    """The Optuna search space of θ for the configured generator (``generator._target_``, ``latent_dim``,
    ``data.num_classes``) on ``search.theta_low``..``theta_high`` in ``theta_step``."""
    search = optuna_search(cfg)
    names = theta_names(str(cfg.generator._target_), int(cfg.latent_dim), int(cfg.data.num_classes))
    return ThetaSpace(names=tuple(names), low=search.theta_low, high=search.theta_high, step=search.theta_step)
