"""Re-running a killed sweep into its own folder: jobs that already finished are not scored again.

A job records in its ``result.json``, under ``request``, what it was asked to score: the
artifact key and the fingerprint of the models there, the generator config as given, the class
density (``latent``), the evaluation settings and the device (so a result made on models since
retrained is scored again). When the
same sweep runs again into the same folder (``hydra.sweep.dir=<the killed sweep's folder>``),
each job whose folder holds a result for the same request returns the recorded objective without
loading models, scoring or opening a logger run, so the sweep's summary covers every job. Any
other result there (another generator config, other evaluation settings) is scored again and
replaced.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from catvae.artifacts import fingerprint
from catvae.sweep.settings import SearchJob

log = logging.getLogger(__name__)


def job_request(settings: SearchJob) -> dict[str, Any]:
    """What a search job scores, as recorded in its result and compared on a re-run (in its JSON form)."""
    source, evaluation = settings.models, settings.evaluation
    trained = not source.key.missing(source.artifacts_dir)  # if not, loading the models says what is missing
    request = {
        "key": dataclasses.asdict(source.key),
        "models": fingerprint(source.key.folder(source.artifacts_dir)) if trained else None,  # cached per file version
        "generator": settings.generator,
        "latent": settings.latent,  # the class density drawn from
        "eval": {
            "samples_per_label": settings.trial_samples_per_label,
            "seed": evaluation.seed,
            "precision": evaluation.precision,
            "cos": evaluation.cos,
            "classifier": evaluation.objective_classifier,
            # a metric group of one's own (a _target_ node) as its mapping's text, like the config's node
            "sample_metrics": [str(group) for group in evaluation.sample_metric_groups],
            "judge_seed": source.judge_seed,
        },
        "device": source.device.type,
    }
    return json.loads(json.dumps(request))


def finished_result(path: Path, request: dict[str, Any]) -> dict[str, Any] | None:
    """The result recorded at ``path`` if it answers ``request``, else None (then the job runs).

    A generator taken from a recorded search (``generator.from_search``) is never reused: the
    record it names may have changed since.
    """
    if request["generator"].get("from_search") or not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(result, dict) or result.get("request") != request or "objective" not in result:
        return None
    if (result.get("models") or {}).get("fingerprint") != request["models"]:
        return None  # scored by a process that held other models (the key was retrained meanwhile)
    log.info("%s: already scored with the same generator and evaluation settings; not scoring it again", path)
    return result
