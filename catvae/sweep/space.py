"""Optuna search spaces for θ: one parameter per entry of θ (Hydra Optuna sweeper's custom search space).

Simple gets ``generator.theta``; Medium-1 gets ``+generator.theta.d`` for every latent dimension d;
Medium-2 gets ``+generator.theta.y.d`` for every class y and dimension d. The range is
``search.theta_low``..``search.theta_high`` (paper: [0, 1]) with ``search.theta_step``
(paper: 0.1; null for a continuous range). The sweeper's hook that reads the config is
:func:`catvae.config.sweeper.search_space`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from optuna.trial import Trial


def theta_names(target: str, latent_dim: int, num_classes: int) -> list[str]:
    """The override names of θ's entries for the generator ``target`` (its ``_target_``)."""
    if target.endswith(".Medium1"):
        return [f"+generator.theta.{d}" for d in range(latent_dim)]
    if target.endswith(".Medium2"):
        return [f"+generator.theta.{y}.{d}" for y in range(num_classes) for d in range(latent_dim)]
    return ["generator.theta"]


@dataclass(frozen=True)
class ThetaSpace:
    """θ's entries (their override names, :func:`theta_names`) and the range each is suggested on."""

    names: tuple[str, ...]
    low: float  # search.theta_low
    high: float  # search.theta_high
    step: float | None  # search.theta_step; None: a continuous range


def theta_entries(space: ThetaSpace, trial: Trial) -> None:
    """Suggest every entry of θ on the space's range."""
    for name in space.names:
        trial.suggest_float(name, space.low, space.high, step=space.step)
