"""The Hydra callbacks of a search multirun: the sweep folder's summary, an Optuna study resumed
and summarised once, a user error in either turned into its message and exit status 2.

They sit with the config package (above :mod:`catvae.sweep`, whose functions they call) because
a callback's user error must end the process the way a command's does (:func:`catvae.config.task.command_errors`:
Hydra turns a callback's exceptions into warnings, and exiting is what stops the sweep).
``conf/search_job.yaml`` and ``conf/search/optuna.yaml`` name them under ``hydra.callbacks``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from catvae.config.settings import sweep_summary_settings
from catvae.config.sweeper import check_sweep_folder, is_optuna_sweep, sweep_directions
from catvae.config.task import command_errors
from catvae.sweep.scoring import rescore
from catvae.sweep.settings import SweepSummarySettings
from catvae.sweep.storage import open_study
from catvae.sweep.study import (
    claim_summary,
    existing_study,
    join_study,
    leave_study,
    running_members,
    study_folder,
    study_results,
)
from catvae.sweep.summary import summarize
from catvae.sweep.trials import fail_stale_trials, forget_asked_trials


def rescorer(settings: SweepSummarySettings) -> Callable[[list[dict]], list[dict]]:
    """The re-scoring of a sweep's best trials on the full evaluation (:func:`catvae.sweep.scoring.rescore`)."""
    return functools.partial(rescore, settings.models, settings.latent, settings.evaluation)


class SweepSummary(Callback):
    """Hydra callback: summarize a search multirun when all its jobs have returned."""

    def __init__(self, wandb: bool = True, project: str = "catvae"):
        self.wandb, self.project = wandb, project
        self.refused = False

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.refused = True  # until the check passes: a refused sweep's folder is not summarised
        with command_errors():  # Hydra turns a callback's exceptions into warnings; exiting stops the sweep
            check_sweep_folder(config)
        self.refused = False

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.refused:
            return
        sweep_dir = Path(config.hydra.sweep.dir)
        # An Optuna study may be shared by several processes: its one W&B summary run is written by
        # the process that finishes the study (:class:`StudySummary`), not per folder.
        settings = sweep_summary_settings(config)
        outputs = summarize(
            sweep_dir,
            settings.records_dir,
            log_to_wandb=self.wandb and settings.wandb and not is_optuna_sweep(config),
            project=self.project,
            rescore=rescorer(settings),
            rescore_top=settings.rescore_top,
        )
        if outputs:
            best = outputs["best"]
            print(
                f"best of {sweep_dir.name}: {best['name']} θ={best['theta']} n={best['n']}: accuracy {best['accuracy']:.4f}, "
                f"cos_pairwise {best['cos_pairwise']:.4f}, objective {best['objective']:.4f}"
            )
            print(f"sweep summary: {sweep_dir}")


class ResumeStudy(Callback):
    """Hydra callback for Optuna searches: before the sweeper starts, create the storage's schema
    and the study if absent (safe when many processes start together on an empty database:
    :mod:`catvae.sweep.storage`), then fail the study's trials that a dead process left RUNNING.

    Hydra calls ``on_multirun_start`` before it instantiates the sweeper
    (``hydra._internal.hydra.Hydra.multirun``), so the sweeper's own ``create_study`` finds both."""

    def __init__(self, grace_s: float = 3600.0):
        self.grace = timedelta(seconds=float(grace_s))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        forget_asked_trials()
        storage_url, name = config.hydra.sweeper.get("storage"), config.hydra.sweeper.get("study_name")
        if isinstance(storage_url, str) and name:
            # Hydra turns a callback's exceptions into warnings; exiting is what stops the sweep.
            with command_errors():
                storage, _ = open_study(storage_url, str(name), sweep_directions(config))
            failed = fail_stale_trials(storage_url, str(name), self.grace, storage=storage)
            if failed:
                print(f"study {name}: trials {failed} were left RUNNING by a process that is gone; marked FAIL")


class StudySummary(Callback):
    """Hydra callback for Optuna searches: join the study when the sweep starts; when it ends, leave
    it, and if no other process is still running it, summarise the whole study once.

    Runs after :class:`ResumeStudy` at the start (the study exists by then) and,
    Hydra calling end callbacks in reverse order, before the sweep folder's own summary at the end.
    """

    def __init__(self, grace_s: float = 3600.0, wandb: bool = True, project: str = "catvae"):
        self.grace = timedelta(seconds=float(grace_s))
        self.wandb, self.project = wandb, project
        self.member: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.member = None
        if not is_optuna_sweep(config):
            return
        storage, study_id = existing_study(str(config.hydra.sweeper.storage), str(config.hydra.sweeper.study_name))
        self.member = join_study(storage, study_id, str(config.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from optuna.trial import TrialState

        if self.member is None:
            return
        name = str(config.hydra.sweeper.study_name)
        storage, study_id = existing_study(str(config.hydra.sweeper.storage), name)
        leave_study(storage, study_id, self.member)
        others = running_members(storage, study_id, self.member, self.grace)
        if others:
            print(f"study {name}: still run by {', '.join(others)}; the last process to finish summarises it")
            return
        complete = len(storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.COMPLETE,)))
        if complete == 0 or not claim_summary(storage, study_id, name, complete):
            return
        self.summarize(config, storage, study_id, name)

    def summarize(self, config: DictConfig, storage: Any, study_id: int, name: str) -> None:
        results = study_results(storage, study_id)
        if not results:
            return
        settings = sweep_summary_settings(config)
        folder = study_folder(settings.log_dir, name)
        folder.mkdir(parents=True, exist_ok=True)
        outputs = summarize(
            folder,
            settings.records_dir,
            log_to_wandb=self.wandb and settings.wandb,
            project=self.project,
            rescore=rescorer(settings),
            rescore_top=settings.rescore_top,
            results=results,
            group=name,
        )
        best = outputs["best"]
        print(
            f"study {name}: {len(results)} trials; best {best['name']} n={best['n']}: accuracy {best['accuracy']:.4f}, "
            f"cos_pairwise {best['cos_pairwise']:.4f}, objective {best['objective']:.4f}"
        )
        print(f"study summary: {folder}")
