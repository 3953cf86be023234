"""Optuna search spaces for θ: one parameter per entry of θ (Hydra Optuna sweeper's custom search space).

Simple gets ``generator.theta``; Medium-1 gets ``+generator.theta.d`` for every latent dimension d;
Medium-2 gets ``+generator.theta.y.d`` for every class y and dimension d. The range is
``search.theta_low``..``search.theta_high`` (paper: [0, 1]) with ``search.theta_step``
(paper: 0.1; null for a continuous range).
"""

from __future__ import annotations

from omegaconf import DictConfig
from optuna.trial import Trial


def theta_names(cfg: DictConfig) -> list[str]:
    """The override names of θ's entries for the configured generator."""
    target = str(cfg.generator._target_)
    if target.endswith(".Medium1"):
        return [f"+generator.theta.{d}" for d in range(int(cfg.latent_dim))]
    if target.endswith(".Medium2"):
        return [f"+generator.theta.{y}.{d}" for y in range(int(cfg.data.num_classes)) for d in range(int(cfg.latent_dim))]
    return ["generator.theta"]


def theta_entries(cfg: DictConfig, trial: Trial) -> None:
    """Suggest every entry of θ on the configured range."""
    low, high, step = float(cfg.search.theta_low), float(cfg.search.theta_high), cfg.search.theta_step
    for name in theta_names(cfg):
        trial.suggest_float(name, low, high, step=None if step is None else float(step))
