"""The Hydra callback that sets torch's threads in each job of a multirun (:mod:`catvae.core.threads`).

``conf/train.yaml`` and ``conf/search_job.yaml`` name it under ``hydra.callbacks.threads``. It lives
in the config layer because Hydra hands it the job's whole config; it reads the launcher's node
there and passes what :func:`~catvae.core.threads.threads_per_job` needs down as plain values.
A module of its own, not :mod:`catvae.config.callbacks`: Hydra builds it at every train and search
start, and importing the sweep's callbacks (the sweep, the evaluator, Optuna) takes seconds.
"""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from catvae.core.errors import ConfigError
from catvae.core.threads import threads_per_job


class JobThreads(Callback):
    """Hydra callback (``hydra.callbacks.threads``): set torch's intra-op threads when a job starts,
    in the process that runs it. ``per_job``: a fixed count (``hydra.callbacks.threads.per_job=4``);
    null: cores // parallel jobs under the joblib launcher, torch's default otherwise."""

    def __init__(self, per_job: int | None = None):
        if per_job is not None and int(per_job) < 1:
            raise ConfigError("hydra.callbacks.threads.per_job", per_job, "a whole number of threads ≥ 1, or null")
        self.per_job = None if per_job is None else int(per_job)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        launcher = config.hydra.launcher  # what threads_per_job reads of it, as plain values
        threads = threads_per_job({key: launcher.get(key) for key in ("_target_", "n_jobs")}, self.per_job)
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
