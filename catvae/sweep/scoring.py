"""Scoring generator configurations on trained artifacts: one search job, the re-scoring of a sweep's best.

What :mod:`catvae.search` (the command), :mod:`catvae.sweep.gradient`, :mod:`catvae.sweep.summary`
and the sweep callbacks (:mod:`catvae.config.callbacks`) share: the result file of a job, its
columns, the models and the judge's reference cached per process, and the scoring itself.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import OmegaConf

from catvae.artifacts import ArtifactKey, Models, load_judge, load_models
from catvae.core.files import write_json
from catvae.core.loggers import log_summary
from catvae.core.targets import instantiate
from catvae.densities.diag import ClassLatentStats
from catvae.evaluation import metric_keys
from catvae.evaluation.evaluator import EvaluationSettings
from catvae.evaluation.sample_metrics import METRIC_GROUPS, RealReference
from catvae.generators.gaussian import build_generator
from catvae.sweep.jobs import finished_result, job_request
from catvae.sweep.records import resolve_generator
from catvae.sweep.settings import ScoredModels, SearchJob
from catvae.sweep.study import record_trial_result

RESULT_FILE = "result.json"
TRIAL_KEYS = ("samples_per_label", "accuracy", "judge_accuracy", "cos_pairwise", "cos_to_mean", "objective")
SAMPLE_METRIC_KEYS = metric_keys.SAMPLE_METRIC_KEYS  # declared by each metric group (catvae/evaluation/metric_keys.py)


@functools.lru_cache(maxsize=4)
def cached_models(key: ArtifactKey, artifacts_dir: str, device: str) -> Models:
    """Models and statistics load once per process (onto ``device``), however many jobs the launcher runs in it."""
    return load_models(key, artifacts_dir, device)


@functools.lru_cache(maxsize=2)
def cached_reference(data: str, judge_seed: int, artifacts_dir: str, device: str, bf16: bool) -> RealReference:
    """The judge and the real images it compares samples with (``data``: the data config as JSON),
    loaded once per process; each metric's real-side statistics are computed on first use
    (:class:`~catvae.evaluation.sample_metrics.RealReference`), not once per job."""
    node = OmegaConf.create(json.loads(data))
    judge = load_judge(str(node.name), judge_seed, artifacts_dir, device)
    images = instantiate(node)
    images.setup()
    test_images, test_labels = images.test["test"]
    return RealReference(judge, test_images, test_labels, images.train[0], images.train[1], bf16, groups=())


def job_reference(models: ScoredModels) -> RealReference:
    """:func:`cached_reference` for a job's models (the data they name, the judge's seed, their device and precision)."""
    data = json.dumps(dict(models.data), sort_keys=True)
    return cached_reference(data, models.judge_seed, models.artifacts_dir, str(models.device), models.bf16)


def process_record() -> dict:
    """The process that scored a job: its pid, torch's intra-op threads, and how often it has loaded the
    models and the judge's reference so far (each load is a miss of the caches above). Under Hydra's
    joblib launcher the jobs run in reused worker processes: each worker loads once, and runs
    cores // workers threads (:mod:`catvae.core.threads`); this record lets a sweep check both."""
    return {
        "pid": os.getpid(),
        "torch_threads": torch.get_num_threads(),
        "loads": {"models": cached_models.cache_info().misses, "reference": cached_reference.cache_info().misses},
    }


def models_record(models: Models) -> dict:
    """Which models a score was made on: their folder and fingerprint (kept in result.json and the records)."""
    return {"folder": str(models.folder), "fingerprint": models.fingerprint}


def job_models(source: ScoredModels) -> tuple[ArtifactKey, torch.device, Models]:
    """The artifact key of a job's models, their device and the models on it (cached)."""
    return source.key, source.device, cached_models(source.key, source.artifacts_dir, str(source.device))


def rescore(source: ScoredModels, latent: str, evaluation: EvaluationSettings, results: list[dict]) -> list[dict]:
    """Score each result's generator config again on ``eval.samples_per_label`` samples per label,
    drawing from its class density (``latent`` where a result names none).

    Each returned result holds the new metrics, and under ``trial`` the ones the sweep ran on.
    """
    _, _, models = job_models(source)
    reference = job_reference(source)
    rescored = []
    for result in results:
        # At the end of an Optuna sweep the study's summary and then the sweep folder's re-score their
        # best trials in this process, often the same ones: a configuration is re-scored once.
        drawn_from = result.get("latent", latent)
        done = json.dumps([result["config"], drawn_from, models.fingerprint, repr(evaluation)], sort_keys=True)
        if done not in _rescored:
            _rescored[done] = rescore_one(evaluation, result["config"], drawn_from, models, reference)
        report = _rescored[done]
        trial = {k: result[k] for k in (*TRIAL_KEYS, *(k for k in SAMPLE_METRIC_KEYS if k in result))}
        rescored.append({**result, **report, "trial": trial, "models": models_record(models)})
    return rescored


_rescored: dict[str, dict] = {}  # rescore's reports in this process, by generator config, density, models and settings


def rescore_one(evaluation: EvaluationSettings, config: dict, latent: str, models: Models, reference: RealReference) -> dict:
    """One generator configuration scored on ``eval.samples_per_label`` samples per label with every metric (and CAS)."""
    generator = build_generator(config)
    # the best gets every built-in metric group (and the configured ones of one's own), and CAS where eval.cas
    own = tuple(group for group in evaluation.sample_metric_groups if not isinstance(group, str))
    settings = evaluation.replace(sample_metric_groups=(*METRIC_GROUPS, *own))
    return settings.score(generator, models.density(latent), models.decoder, models.classifier, reference)


def recorded_result(settings: SearchJob, job: dict) -> dict | None:
    """The result a job's folder already holds for the same request (a re-run of a killed sweep
    into its folder, :mod:`catvae.sweep.jobs`), else None; ``job["request"]`` is set either way."""
    job["request"] = job_request(settings)
    result = finished_result(Path(settings.output_dir) / RESULT_FILE, job["request"])
    if result is not None:
        print(
            f"{result['name']} θ={result['theta']} n={result['n']}: objective {result['objective']:.4f} "
            f"(recorded in {settings.output_dir})"
        )
    return result


def score_job(
    settings: SearchJob,
    loggers: list,
    job: dict,
    started: float,
    check_models: Callable[[ClassLatentStats], None],
) -> dict:
    """Evaluate the job's generator on its models (``check_models``: the config checked against
    their statistics, before anything is built), log it to ``loggers`` and return the job's result;
    ``job`` receives its timing, name and result for :func:`catvae.search.score`'s writing step."""
    samples = settings.trial_samples_per_label
    key, device, models = job_models(settings.models)
    latent = settings.latent
    node = resolve_generator(settings.generator, settings.records_dir, key, models, latent)  # from_search=best: θ, n
    check_models(models.stats)
    generator = build_generator(node)
    density = models.density(latent)
    reference = job_reference(settings.models)
    timing: dict[str, float] = {"load": time.perf_counter() - started}
    # a trial: no CAS (the re-scored best gets it)
    trial_settings = settings.evaluation.replace(samples_per_label=samples, cas=None)
    report = trial_settings.score(generator, density, models.decoder, models.classifier, reference, timing)
    config = node | {"theta": report["theta"], "n": report["n"]}
    provenance_started = time.perf_counter()
    result = {
        "key": dataclasses.asdict(key),
        "config": config,
        "device": str(device),
        "models": models_record(models),
        **report,
        "search": settings.method.name,  # how the configuration was chosen: grid, paper_grid, optuna
        "provenance": settings.provenance(),
        "request": job["request"],
        "process": process_record(),
    }
    timing["provenance"] = time.perf_counter() - provenance_started
    if settings.trial is not None:
        result["optuna_trial"] = settings.trial.number
    job.update(timing=timing, logging_started=time.perf_counter(), name=generator.name, result=result)
    for logger in loggers:
        logger.log_hyperparams(
            {
                "generator": generator.params(models.stats),
                "latent": latent,
                "key": job["result"]["key"],
                "eval": dict(settings.eval_config),
                "objective": dict(settings.objective_config),
                "judge_seed": settings.models.judge_seed,
            }
        )
    log_summary(
        loggers,
        {name: report[name] for name in ("accuracy", "judge_accuracy", "cos_pairwise", "cos_to_mean", "objective")}
        | {name: report[name] for name in SAMPLE_METRIC_KEYS if name in report}
        | {"per_label": report["per_label"], "theta_eff": report["theta_eff"]},
    )
    return job["result"]


def write_result(settings: SearchJob, job: dict, started: float, result: dict) -> None:
    """Write a scored job's ``result.json`` (the loggers' cost and the whole job's timed), keep an Optuna
    job's scores in its trial (:func:`catvae.sweep.study.record_trial_result`) and print the scores."""
    timing = job["timing"]
    timing["log"] = time.perf_counter() - job["logging_started"]
    timing["total"] = time.perf_counter() - started
    # Wall-clock end, so a benchmark can measure each job's whole cost (Hydra's part included)
    # from the spacing of consecutive jobs of one multirun.
    result["timing_s"] = {**{k: round(v, 4) for k, v in timing.items()}, "finished_at": time.time()}
    write_json(result, Path(settings.output_dir) / RESULT_FILE)
    trial = settings.trial
    if "optuna_trial" in result and trial is not None:
        # Where the process that finishes a shared study finds it (the processes may share no file system).
        record_trial_result(trial.storage_url, trial.study_name, int(result["optuna_trial"]), result, settings.output_dir)
    print(
        f"{job['name']} θ={result['theta']} n={result['n']}: accuracy {result['accuracy']:.4f} "
        f"(judge {result['judge_accuracy']:.4f}), cos_pairwise {result['cos_pairwise']:.4f}, "
        f"objective {result['objective']:.4f}"
    )
