"""torch's threads in each job of a multirun whose launcher runs jobs side by side on one machine.

Hydra's joblib launcher runs ``n_jobs`` worker processes at once, and each would start torch with one
intra-op thread per core: ``n_jobs × cores`` threads on ``cores`` cores, whose OpenMP barriers then
wait on one another. joblib's loky backend sets ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` to
``cores // n_jobs`` in its workers, but a caller's ``OMP_NUM_THREADS`` is passed through only for that
variable, and torch reads ``MKL_NUM_THREADS`` as well (``OMP_NUM_THREADS=2`` alone still gives workers
one thread). :class:`JobThreads` therefore sets torch's thread count itself, in the job's own process
(Hydra calls ``on_job_start`` where the job runs; the callback is :mod:`catvae.config.threads`'s),
from the launcher's config or from an explicit ``per_job`` (:func:`threads_per_job`), and the job's
``result.json`` records what it ran with.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which SLURM and taskset narrow), at least 1."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # no sched_getaffinity (macOS)
        return max(os.cpu_count() or 1, 1)


def parallel_workers(launcher: Mapping[str, Any]) -> int:
    """How many jobs the launcher (``hydra.launcher``'s ``_target_`` and ``n_jobs``) runs at once on this
    machine: joblib's ``n_jobs`` (negative counts back from the cores, as joblib does: -1 all of
    them), 1 for any other launcher."""
    if "joblib" not in str(launcher.get("_target_", "")).lower():
        return 1
    n_jobs = launcher.get("n_jobs")
    cores = available_cores()
    if n_jobs is None:
        return 1
    n_jobs = int(n_jobs)
    return max(cores + 1 + n_jobs, 1) if n_jobs < 0 else max(n_jobs, 1)


def threads_per_job(launcher: Mapping[str, Any], per_job: int | None) -> int | None:
    """``per_job`` when given; else cores // workers where the launcher runs several jobs at once
    (so that workers × threads ≤ cores); None (torch's default) where it runs one at a time."""
    if per_job is not None:
        return int(per_job)
    workers = parallel_workers(launcher)
    return max(available_cores() // workers, 1) if workers > 1 else None
