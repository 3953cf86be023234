"""One summary per Optuna study, however many processes (and machines) share it.

Several ``catvae.search -m … search=optuna`` processes may run one study together (same
``search.storage_url`` and study name, e.g. on a PostgreSQL server). Each writes its own sweep
folder (its jobs, ``trials.csv``, ``best.json``: :mod:`catvae.sweep.summary`), but the study is
one experiment, so it gets one summary — the trials of every process, the best of all of them
(re-scored), one W&B run of job type ``sweep-summary`` in the study's group — written once, by the
process that finishes the study. The database is the only thing the processes share (they may
not share a file system), so everything this needs lives in the study's storage:

- each job stores its scores in its trial's user attributes (:data:`RESULT`,
  :func:`record_trial_result`), so the summary can be made from any machine;
- each sweep process registers itself in the study's user attributes when it starts and marks
  itself done when it ends (:data:`MEMBER`); a process that ends while no other member is still
  running finishes the study (members whose process is gone, or silent on another host for longer
  than the grace period, do not hold it back);
- two processes ending at the same moment may both see themselves last; the summary is claimed
  through the storage's unique study names (:func:`claim_summary`), so exactly one of them writes
  it, and a study resumed later with more trials is summarised again.

The summary goes to ``{paths.log_dir}/search/studies/<study name>/`` (``trials.csv``,
``figure1.png``, ``best.json``) and the best configuration into the search records, as for a sweep.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RESULT = "catvae_result"  # a job's scores (its result.json without per-label detail), in its trial's user attributes
MEMBER = "catvae_process:"  # study user attribute prefix: one entry per sweep process that joined the study
CLAIM = " :: summary at {complete} trials"  # marker study that claims the summary of a study at that many trials
SUMMARISED = "catvae_summarised_at"  # study user attribute: the number of COMPLETE trials of its last summary
LEFT_OUT = ("per_label", "provenance", "request")  # big, and only needed in the job's own folder


def existing_study(storage_url: str, study_name: str) -> tuple[Any, int]:
    """The storage behind ``storage_url`` and the id of ``study_name`` in it (KeyError if there is none;
    :class:`~catvae.config.callbacks.ResumeStudy` creates both before the sweep starts)."""
    from catvae.sweep.trials import study_storage

    storage = study_storage(storage_url)
    return storage, storage.get_study_id_from_name(study_name)


def compact_result(result: dict[str, Any]) -> dict[str, Any]:
    """What a trial keeps of its job's result: every score, θ and the generator config, not the
    per-label tables or the provenance (those stay in the job folder's result.json)."""
    return {k: v for k, v in result.items() if k not in LEFT_OUT}


def record_trial_result(storage_url: str, study_name: str, trial_number: int, result: dict[str, Any], job_dir: str) -> None:
    """Store a job's scores in the user attributes of its trial (it is still RUNNING: the sweeper
    tells its objective once the job returns)."""
    storage, study_id = existing_study(storage_url, study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial_number)
    storage.set_trial_user_attr(trial_id, RESULT, {**compact_result(result), "job_dir": job_dir})


def study_results(storage: Any, study_id: int) -> list[dict[str, Any]]:
    """The scores of the study's COMPLETE trials, in trial order, each with ``job`` = its trial number
    (the form :func:`catvae.sweep.summary.summarize` reads). Trials without stored scores (asked by
    an older catvae) are left out, with a warning."""
    from optuna.trial import TrialState

    trials = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.COMPLETE,))
    results = [{"job": str(t.number), **t.user_attrs[RESULT]} for t in trials if RESULT in t.user_attrs]
    if len(results) < len(trials):
        missing = len(trials) - len(results)
        log.warning("%d COMPLETE trials hold no scores (run by an older catvae): left out of the study summary", missing)
    return results


def member_key(process: dict[str, Any]) -> str:
    return f"{MEMBER}{process['host']}:{process['pid']}:{process['started']}"


def join_study(storage: Any, study_id: int, sweep_dir: str) -> str:
    """Register this process as running the study; its user-attribute key."""
    from catvae.sweep.trials import this_process

    me = this_process()
    key = member_key(me)
    storage.set_study_user_attr(study_id, key, {**me, "sweep_dir": sweep_dir, "state": "running", "since": now_iso()})
    return key


def leave_study(storage: Any, study_id: int, key: str) -> None:
    """Mark this process's membership done."""
    member = storage.get_study_user_attrs(study_id).get(key, {})
    storage.set_study_user_attr(study_id, key, {**member, "state": "done", "until": now_iso()})


def now_iso() -> str:
    return datetime.now().isoformat(timespec="seconds")


def last_activity(member: dict[str, Any], trials: list[Any]) -> datetime:
    """When a member was last seen working: it joined, or it started one of its trials."""
    from catvae.sweep.trials import OWNER

    seen = [datetime.fromisoformat(member["since"])]
    for trial in trials:
        owner = trial.user_attrs.get(OWNER) or {}
        if (owner.get("host"), owner.get("pid"), owner.get("started")) == (member["host"], member["pid"], member["started"]):
            seen.append(trial.datetime_start or seen[0])
    return max(seen)


def running_members(storage: Any, study_id: int, me: str, grace: timedelta, now: datetime | None = None) -> list[str]:
    """The other members that may still add trials to the study (as ``host:pid``).

    A member is not running once it marked itself done, when its process is gone (same host), or
    when it is on another host and neither joined nor started a trial for longer than ``grace``
    (killed there, it cannot say so; if it was only slow, the study is summarised again when it
    finishes)."""
    from catvae.sweep.trials import owner_alive

    members = {k: v for k, v in storage.get_study_user_attrs(study_id).items() if k.startswith(MEMBER) and k != me}
    trials = None
    running = []
    for member in members.values():
        if member.get("state") == "done":
            continue
        alive = owner_alive(member)
        if alive is False:
            continue
        if alive is None:
            trials = trials if trials is not None else storage.get_all_trials(study_id, deepcopy=False)
            if (now or datetime.now()) - last_activity(member, trials) > grace:
                continue
        running.append(f"{member['host']}:{member['pid']}")
    return running


def claim_summary(storage: Any, study_id: int, study_name: str, complete: int) -> bool:
    """True for exactly one caller per (study, number of COMPLETE trials).

    Optuna's storage has no compare-and-set, but its study names are unique: the caller that creates
    the marker study ``<study> :: summary at <n> trials`` wins, the others get DuplicatedStudyError.
    The winner records ``n`` in the study (:data:`SUMMARISED`) before it deletes the marker, so a
    process ending later with the same trials sees the study summarised; the marker lives only for
    those few milliseconds, and the storage lists the study alone again (a process killed in
    between leaves a marker behind, which only blocks a second summary of the same trials)."""
    from optuna.exceptions import DuplicatedStudyError
    from optuna.study import StudyDirection

    if storage.get_study_user_attrs(study_id).get(SUMMARISED, -1) >= complete:
        return False
    try:
        marker = storage.create_new_study([StudyDirection.MINIMIZE], study_name + CLAIM.format(complete=complete))
    except DuplicatedStudyError:
        return False
    storage.set_study_user_attr(study_id, SUMMARISED, complete)
    storage.delete_study(marker)
    return True


def study_folder(log_dir: str | Path, study_name: str) -> Path:
    """``{log_dir}/search/studies/<study name>``, the name made safe as a folder name."""
    return Path(log_dir) / "search" / "studies" / re.sub(r"[^A-Za-z0-9._=-]+", "_", study_name)
