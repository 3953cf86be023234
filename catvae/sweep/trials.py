"""Optuna trials of a search: which process runs each one, and failing those whose process died.

The Optuna sweeper asks and tells trials itself, with no heartbeat, so a killed sweep leaves the
trial it was running RUNNING for ever. Each trial therefore records its owner (host, pid and
the process's start time) in its user attributes when it is asked (:func:`claim_trial`, from the
sweeper's custom search space, :func:`catvae.config.sweeper.search_space`), and when a sweep starts
on an existing study (:class:`~catvae.config.callbacks.ResumeStudy`, a Hydra callback) the RUNNING
trials whose owner is gone are marked FAIL
before any new trial is asked. Several processes may share a study (one per sampler seed, on
one or several machines), so a trial is failed only when it is known to be orphaned; see
:func:`why_stale`. Each job's ``result.json`` records its Optuna trial number
(:func:`job_trial_number`), and each trial the folder of its job: a job that runs in another process
(Hydra's joblib or submitit launchers) finds its trial in the storage by that folder.

:class:`~catvae.config.callbacks.ResumeStudy` also creates the storage's schema and the study before the sweeper does
(:func:`catvae.sweep.storage.open_study`), so that processes started together on an empty
database all join one study instead of racing to create it.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optuna.trial import FrozenTrial, Trial, TrialState

if TYPE_CHECKING:
    from optuna.storages import RDBStorage

log = logging.getLogger(__name__)

OWNER = "catvae_owner"  # {"host", "pid", "started"} of the process running the trial
JOB_DIR = "catvae_job_dir"  # the job folder the trial is scored in
STALE = "catvae_failed_stale"  # why a RUNNING trial was marked FAIL

# Trial numbers asked by this process in the current sweep, in the order the jobs are numbered
# (the sweeper asks a batch, then launches it from the next job number). Jobs run in this
# process under Hydra's basic launcher (and joblib's with n_jobs=1), which is how such a job finds
# its trial; a job in a worker process sees this list empty and asks the storage instead.
_asked: list[int] = []


def process_start(pid: int) -> str | None:
    """When process ``pid`` started, as the kernel counts it (clock ticks since boot, field 22 of
    ``/proc/<pid>/stat``): with the pid it names one process, even after the pid is reused.
    None where there is no such process or no ``/proc``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # fields after the command name, which may hold spaces


def this_process() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": process_start(os.getpid())}


def owner_alive(owner: dict[str, Any]) -> bool | None:
    """Whether the process that owns a trial still runs: True, False, or None when this machine
    cannot tell (the owner is on another host)."""
    if owner.get("host") != socket.gethostname():
        return None
    pid = int(owner["pid"])
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, as another user's process
    started = process_start(pid)
    if started is None or owner.get("started") is None:
        return True  # it exists; without /proc a reused pid cannot be told apart
    return started == owner["started"]


def why_stale(trial: FrozenTrial, grace: timedelta, now: datetime | None = None) -> str | None:
    """Why a RUNNING trial is orphaned, or None if it may still be running.

    The rule: a trial owned by a process on this host is stale exactly when that process is gone
    (its pid no longer runs, or now names a process started at another time). A trial owned on
    another host, or with no owner recorded (asked by an older version, or killed between the ask
    and the record), cannot be checked from here: it is stale only once it has been RUNNING for
    longer than ``grace`` (a search job scores in seconds to minutes; the default grace is an hour).
    """
    owner = trial.user_attrs.get(OWNER)
    if owner:
        alive = owner_alive(owner)
        if alive is False:
            return f"its process {owner['host']}:{owner['pid']} is gone"
        if alive:
            return None
    started = trial.datetime_start
    if started is None:
        return None
    age = (now or datetime.now()) - started
    if age > grace:
        where = f"on {owner['host']}" if owner else "by an unknown process"
        return f"RUNNING {where} for {age.total_seconds():.0f} s, longer than the {grace.total_seconds():.0f} s grace"
    return None


def fail_stale_trials(
    storage_url: str, study_name: str, grace: timedelta, now: datetime | None = None, storage: RDBStorage | None = None
) -> list[int]:
    """Mark FAIL the study's RUNNING trials that :func:`why_stale` finds orphaned; their numbers.
    ``storage``: the storage at ``storage_url`` when the caller has opened it already."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.storages import RDBStorage
    from sqlalchemy.engine import make_url

    if storage is None:
        database = make_url(storage_url).database
        if make_url(storage_url).get_backend_name() == "sqlite" and database and not Path(database).is_file():
            return []  # no database yet, so no study to resume (and opening one would create the file)
        storage = RDBStorage(storage_url)
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return []  # a new study: nothing to resume
    failed = []
    for trial in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
        reason = why_stale(trial, grace, now)
        if reason is None:
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            storage.set_trial_user_attr(trial_id, STALE, reason)
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue  # finished, or failed by another process resuming the study, meanwhile
        log.warning("Optuna trial %d of study %s marked FAIL: %s", trial.number, study_name, reason)
        failed.append(trial.number)
    return failed


def claim_trial(trial: Trial, sweep_dir: str) -> None:
    """Record in ``trial`` who runs it (this process) and where: the folder of the sweep's next job
    (``sweep_dir``/<number of trials asked so far>), the job that will score it."""
    trial.set_user_attr(OWNER, this_process())
    # Absolute, as Hydra writes the job's hydra.runtime.output_dir: the job finds its trial by it.
    trial.set_user_attr(JOB_DIR, os.path.abspath(os.path.join(sweep_dir, str(len(_asked)))))
    _asked.append(trial.number)


def job_trial_number(
    job_number: object, sweeper_target: str, storage_url: object, study_name: object, job_dir: str
) -> int | None:
    """The Optuna trial the job ``job_number`` (``hydra.job.num``) scores in ``job_dir``; None outside an
    Optuna sweep (``sweeper_target``: the sweeper's ``_target_``; ``storage_url``, ``study_name``: its study).

    Where the job runs in the process that asked its trial (Hydra's basic launcher), that process's
    list of asked trials says it. Where it runs in another process (a joblib worker, a submitit job
    on this or another machine), the list there is empty: the job looks its trial up in the study's
    storage, as the RUNNING trial whose :data:`JOB_DIR` is this job's folder (each sweep process has
    a folder of its own, so a shared study never holds two trials with one folder).
    """
    if _asked:
        return _asked[job_number] if isinstance(job_number, int) and 0 <= job_number < len(_asked) else None
    if "optuna" not in sweeper_target.lower() or not isinstance(storage_url, str) or not study_name:
        return None
    return trial_in_folder(storage_url, str(study_name), job_dir)


@functools.lru_cache(maxsize=2)
def study_storage(storage_url: str) -> Any:
    """A study's storage, opened once per process (one SQLAlchemy engine and its connection pool: a
    worker scores many jobs). Its tables exist: the sweep created the study
    (:class:`~catvae.config.callbacks.ResumeStudy`) before it asked any trial."""
    from optuna.storages import RDBStorage

    return RDBStorage(storage_url, skip_table_creation=True)


def trial_in_folder(storage_url: str, study_name: str, job_dir: str) -> int | None:
    """The number of the study's RUNNING trial recorded as scored in ``job_dir`` (None if none is)."""
    storage = study_storage(storage_url)
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return None
    wanted = os.path.abspath(job_dir)
    for trial in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
        recorded = trial.user_attrs.get(JOB_DIR)
        if isinstance(recorded, str) and os.path.abspath(recorded) == wanted:
            return int(trial.number)
    return None


def forget_asked_trials() -> None:
    """Forget the trials this process asked so far: a new multirun numbers its jobs from 0 again."""
    _asked.clear()
