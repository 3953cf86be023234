"""Typed settings read once from a command's config and handed down to the layers that use them."""

from __future__ import annotations

import functools
from typing import Any, cast

import torch
from omegaconf import DictConfig, OmegaConf

from catvae.artifacts import ArtifactKey
from catvae.config.schema import GradientSearchConfig, OptunaSearchConfig
from catvae.config.validate import search_method as search_schema
from catvae.core.device import resolve_device
from catvae.core.provenance import provenance
from catvae.evaluation.evaluator import EvaluationSettings, classify_in_bf16
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


def evaluation_settings(cfg: DictConfig) -> EvaluationSettings:
    """How generators are scored: the config's ``eval`` and ``objective``, and CAS's recipe (the judge's)."""
    return EvaluationSettings.from_config(cfg.eval, cfg.objective, cfg.judge)


# ------------------------------------------------------------------ search (catvae.sweep.settings) -----------------
# The settings of catvae.search, of its sweep's callbacks and of the sweeper's hooks: one builder per
# class of catvae.sweep.settings (and catvae.sweep.space.ThetaSpace), each reading the composed config
# once (its ranges checked by catvae.config.validate.validate_search).


def plain_node(node: Any, resolve: bool = True) -> dict[str, Any]:
    """A config node as a plain dict (interpolations resolved unless ``resolve=False``)."""
    return cast(dict[str, Any], OmegaConf.to_container(node, resolve=resolve))


def scored_models(cfg: DictConfig) -> ScoredModels:
    """The trained models ``data``, ``vae``, ``latent_dim`` and ``seed`` name, on ``device=``, and the
    judge (``judge.seed``) with the data its real images come from."""
    key = ArtifactKey.from_config(cfg)
    device = resolve_device(str(cfg.device), "device")
    return ScoredModels(
        key=key,
        artifacts_dir=str(cfg.paths.artifacts_dir),
        device=device,
        data=plain_node(cfg.data),
        judge_seed=int(cfg.judge.seed),
        bf16=classify_in_bf16(cfg, device),
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
        bf16=classify_in_bf16(cfg, device) and device.type == "cpu",
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
        generator=plain_node(cfg.generator),
        latent=str(cfg.latent.name),
        evaluation=evaluation_settings(cfg),
        method=search_method(cfg, models.device),
        records_dir=str(cfg.paths.search_records_dir),
        output_dir=str(cfg.paths.output_dir),
        eval_config=plain_node(cfg.eval, resolve=False),
        objective_config=plain_node(cfg.objective, resolve=False),
        wandb="wandb" in (cfg.get("logger") or {}),
        provenance=functools.partial(provenance, cfg, models.device),
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
