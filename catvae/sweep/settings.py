"""What the search layer is handed: typed, frozen settings, never the whole config.

Each class is built from the composed config once, at the top (one builder per class in
:mod:`catvae.config.settings`, called by the command :mod:`catvae.search` and the sweep's Hydra
callbacks, :mod:`catvae.config.callbacks`), and passed down; nothing under :mod:`catvae.sweep`
reads a config. A search method's settings keep the split of ``conf/search/`` (:class:`GridSearch`
for ``none`` and ``paper_grid``, :class:`OptunaSearch`, :class:`GradientSettings`), as its typed
schemas do (:data:`catvae.config.schema.SEARCH_SCHEMAS`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from catvae.artifacts import ArtifactKey
from catvae.evaluation.evaluator import EvaluationSettings


@dataclass(frozen=True)
class GridSearch:
    """``conf/search/none.yaml`` and ``paper_grid.yaml``: the grid is Hydra's basic sweeper's; a job
    scores the configuration it is given, on ``eval.samples_per_label`` samples per label."""

    name: str = "grid"  # search.name, recorded in each result: grid or paper_grid


@dataclass(frozen=True)
class OptunaSearch:
    """``conf/search/optuna.yaml``: θ's range for the sweeper's search space, and cheap trials re-scored."""

    name: str = "optuna"
    theta_low: float = 0.0
    theta_high: float = 1.0
    theta_step: float | None = None  # None: a continuous range
    # samples per label a trial scores on (None: eval.samples_per_label); the best are re-scored in full
    trial_samples_per_label: int | None = None
    rescore_top: int = 0  # how many of the best trials are re-scored at the end of the sweep


@dataclass(frozen=True)
class GradientSettings:
    """``conf/search/gradient.yaml``: the front's weights and the optimiser of each point
    (:mod:`catvae.sweep.gradient`); ``bf16``: the decoder and classifier autocast to bf16 on the CPU."""

    weights: tuple[float, ...]
    steps: int = 60
    lr: float = 0.05
    batch_per_label: int = 32
    theta_init: float = 1.0
    theta_high: float = 3.0
    bf16: bool = False
    name: str = "gradient"


SearchMethod = GridSearch | OptunaSearch | GradientSettings


@dataclass(frozen=True)
class ScoredModels:
    """The trained models a search scores on (``data``, ``vae``, ``latent_dim``, ``seed``: the key),
    the device they load onto, and the judge with the real images it compares samples with."""

    key: ArtifactKey
    artifacts_dir: str  # paths.artifacts_dir
    device: torch.device  # device= resolved
    data: Mapping[str, Any]  # the data node, plain and resolved: the judge's real images are built from it
    judge_seed: int  # judge.seed: which judge scores judge_accuracy and the sample metrics
    bf16: bool  # classifier inference in bf16 (eval.precision on this device)


@dataclass(frozen=True)
class StudyTrial:
    """The Optuna trial a job scores, and the study it belongs to (where the job stores its scores:
    :func:`catvae.sweep.study.record_trial_result`)."""

    number: int
    storage_url: str  # hydra.sweeper.storage
    study_name: str  # hydra.sweeper.study_name


@dataclass(frozen=True)
class SearchJob:
    """One search job: a generator configuration scored on trained models (``python -m catvae.search``),
    or, with :class:`GradientSettings`, a whole front fitted by gradient in one run."""

    models: ScoredModels
    generator: Mapping[str, Any]  # the generator node as configured, plain and resolved (from_search unresolved)
    latent: str  # latent.name: the class density drawn from
    evaluation: EvaluationSettings  # eval and objective (and CAS's recipe)
    method: SearchMethod  # the search's own settings (search=…)
    records_dir: str  # paths.search_records_dir: where the best configurations are recorded
    output_dir: str  # paths.output_dir: the job's folder (a gradient search's run folder)
    eval_config: Mapping[str, Any]  # the eval node, plain: the W&B run's hyperparameters
    objective_config: Mapping[str, Any]  # the objective node, plain: the W&B run's hyperparameters
    wandb: bool  # whether the configured loggers include W&B (a gradient search's summary run)
    provenance: Callable[[], dict[str, Any]]  # the run's provenance record as of the call (seed, config, versions, git, time)
    trial: StudyTrial | None = None  # the Optuna trial this job scores; None outside an Optuna sweep

    @property
    def trial_samples_per_label(self) -> int:
        """Samples per label the job scores on: an Optuna search's ``trial_samples_per_label`` when set
        (cheap trials, the best of which are re-scored at the end; never more than
        ``eval.samples_per_label``), else ``eval.samples_per_label``."""
        return trial_samples(self.method, self.evaluation.samples_per_label)


@dataclass(frozen=True)
class SweepSummarySettings:
    """What the summary of a sweep folder or of a shared Optuna study needs besides the jobs' results
    (:class:`catvae.config.callbacks.SweepSummary`, :class:`~catvae.config.callbacks.StudySummary`)."""

    models: ScoredModels  # the models the jobs scored: the best trials are re-scored on them
    latent: str  # the class density of the jobs (a result that names its own wins)
    evaluation: EvaluationSettings  # the full evaluation the best are re-scored with
    records_dir: str  # paths.search_records_dir
    log_dir: str  # paths.log_dir: a study's summary goes to {log_dir}/search/studies/<study>
    wandb: bool  # whether the configured loggers include W&B
    rescore_top: int  # how many of the best trials are re-scored (0 when the trials were scored in full)


def trial_samples(method: SearchMethod, samples_per_label: int) -> int:
    """Samples per label a trial of ``method`` scores on, given ``eval.samples_per_label``: see
    :attr:`SearchJob.trial_samples_per_label`."""
    cheap = method.trial_samples_per_label if isinstance(method, OptunaSearch) else None
    return samples_per_label if cheap is None else min(cheap, samples_per_label)
