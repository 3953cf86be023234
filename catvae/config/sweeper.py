"""The hooks of a search multirun that Hydra and its Optuna sweeper hand the whole config.

They read the config (``hydra.sweeper``, ``hydra.sweep.dir``, the running job's Hydra config) and
call the search layer with plain values: :func:`search_space` is the sweeper's
``custom_search_space`` (``conf/search/optuna.yaml``), :func:`study_trial` tells a search job
(:mod:`catvae.search`) its trial; the others serve the sweep's callbacks (:mod:`catvae.config.callbacks`).
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from optuna.trial import Trial

from catvae.config.settings import theta_space
from catvae.core.errors import ConfigError
from catvae.sweep.settings import StudyTrial
from catvae.sweep.space import theta_entries
from catvae.sweep.trials import claim_trial, job_trial_number


def is_optuna(config: DictConfig) -> bool:
    """Whether the multirun's sweeper is Optuna's."""
    return "optuna" in str(config.hydra.sweeper.get("_target_", "")).lower()


def is_optuna_sweep(config: DictConfig) -> bool:
    """Whether this multirun asks its trials from an Optuna study in a storage."""
    return is_optuna(config) and isinstance(config.hydra.sweeper.get("storage"), str)


def check_sweep_folder(config: DictConfig) -> None:
    """An Optuna sweep must not reuse an earlier sweep's folder: its job numbers start at 0 again
    and would overwrite that sweep's results (a study resumes from its storage, in a new folder)."""
    folder = Path(config.hydra.sweep.dir)
    if is_optuna(config) and any(folder.glob("*/result.json")):
        raise ConfigError(
            "hydra.sweep.dir",
            str(folder),
            "a folder without an earlier sweep's jobs: an Optuna study resumes from its storage "
            "(search.storage_url) when the same command runs again without hydra.sweep.dir",
        )


def sweep_directions(config: DictConfig) -> list[str]:
    """The sweeper's ``direction`` (a word or a list of words) as a list; minimize when unset."""
    direction = config.hydra.sweeper.get("direction") or "minimize"
    return [str(direction)] if isinstance(direction, str) else [str(d) for d in direction]


def search_space(cfg: DictConfig, trial: Trial) -> None:
    """The sweeper's custom search space: record who runs ``trial`` and where
    (:func:`catvae.sweep.trials.claim_trial`), then suggest θ (:func:`catvae.sweep.space.theta_entries`)."""
    claim_trial(trial, str(cfg.hydra.sweep.dir))
    theta_entries(theta_space(cfg), trial)


def study_trial() -> StudyTrial | None:
    """The Optuna trial the running job scores, and its study, from the job's Hydra config
    (``hydra.job.num``, ``hydra.sweeper``, ``hydra.runtime.output_dir``); None outside an Optuna sweep
    or outside Hydra (:func:`catvae.sweep.trials.job_trial_number`)."""
    if not HydraConfig.initialized():
        return None
    hydra = HydraConfig.get()
    sweeper = hydra.sweeper
    number = job_trial_number(
        OmegaConf.select(cast(DictConfig, hydra), "job.num", default=None),  # missing in a single run
        str(sweeper.get("_target_", "")),
        sweeper.get("storage"),
        sweeper.get("study_name"),
        str(hydra.runtime.output_dir),
    )
    return None if number is None else StudyTrial(number, str(sweeper.get("storage")), str(sweeper.get("study_name")))
