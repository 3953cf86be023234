"""Typed settings read once from a command's config and handed down to the layers that use them."""

from __future__ import annotations

from omegaconf import DictConfig

from catvae.evaluation.evaluator import EvaluationSettings


def evaluation_settings(cfg: DictConfig) -> EvaluationSettings:
    """How generators are scored: the config's ``eval`` and ``objective``, and CAS's recipe (the judge's)."""
    return EvaluationSettings.from_config(cfg.eval, cfg.objective, cfg.judge)
