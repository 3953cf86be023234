"""``python -m catvae.search -m vae=… latent_dim=… generator=… search=paper_grid|optuna``

Each job scores one generator configuration on the trained artifacts of (data, vae, latent_dim,
seed) with the metrics of eq. 4–5 and returns the objective to Hydra's sweeper (the basic
sweeper's grid, or Optuna). Every job writes ``result.json`` in its folder and is one W&B run
(group = the sweep, job type ``search``); at the end of the sweep :mod:`catvae.sweep.summary`
writes ``trials.csv``, ``figure1.png`` and the best configuration.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, cast

import torch
from omegaconf import DictConfig, OmegaConf

from catvae.artifacts import ArtifactKey, Models, load_judge, load_models
from catvae.config.task import hydra_command, run_main, run_task
from catvae.config.validate import validate_search
from catvae.core.device import resolve_device
from catvae.core.files import write_json
from catvae.core.provenance import provenance
from catvae.evaluation import sample_metrics
from catvae.evaluation.sample_metrics import METRIC_GROUPS, RealReference

RESULT_FILE = "result.json"
TRIAL_KEYS = ("samples_per_label", "accuracy", "judge_accuracy", "cos_pairwise", "cos_to_mean", "objective")
SAMPLE_METRIC_KEYS = sample_metrics.SAMPLE_METRIC_KEYS  # declared by each metric group there
warnings.filterwarnings("ignore", message=".*LeafSpec.*")


@functools.lru_cache(maxsize=4)
def cached_models(key: ArtifactKey, artifacts_dir: str, device: str) -> Models:
    """Models and statistics load once per process (onto ``device``), however many jobs the launcher runs in it."""
    return load_models(key, artifacts_dir, device)


@functools.lru_cache(maxsize=2)
def cached_reference(data: str, judge_seed: int, artifacts_dir: str, device: str, bf16: bool) -> RealReference:
    """The judge and the real images it compares samples with (``data``: the data config as JSON),
    loaded once per process; each metric's real-side statistics are computed on first use
    (:class:`~catvae.evaluation.sample_metrics.RealReference`), not once per job."""
    from catvae.config.registry import instantiate

    node = OmegaConf.create(json.loads(data))
    judge = load_judge(str(node.name), judge_seed, artifacts_dir, device)
    images = instantiate(node)
    images.setup()
    test_images, test_labels = images.test["test"]
    return RealReference(judge, test_images, test_labels, images.train[0], images.train[1], bf16, groups=())


def job_reference(cfg: DictConfig, device: torch.device) -> RealReference:
    """:func:`cached_reference` for a job's config (the data it names, ``judge.seed``, its device and precision)."""
    from catvae.evaluation.evaluator import classify_in_bf16

    data = json.dumps(OmegaConf.to_container(cfg.data, resolve=True), sort_keys=True)
    return cached_reference(data, int(cfg.judge.seed), str(cfg.paths.artifacts_dir), str(device), classify_in_bf16(cfg, device))


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


def job_models(cfg: DictConfig) -> tuple[ArtifactKey, torch.device, Models]:
    """The artifact key a job names, its device (``device=``) and the models on it (cached)."""
    key = ArtifactKey.from_config(cfg)
    device = resolve_device(str(cfg.device), "device")
    return key, device, cached_models(key, str(cfg.paths.artifacts_dir), str(device))


def trial_samples(cfg: DictConfig) -> int:
    """Samples per label a job scores on: ``search.trial_samples_per_label`` when set (Optuna's
    cheap trials, the best of which are re-scored at the end; never more than
    ``eval.samples_per_label``), else ``eval.samples_per_label``."""
    samples = cfg.get("search", {}).get("trial_samples_per_label")
    if samples is None:
        return int(cfg.eval.samples_per_label)
    return min(int(samples), int(cfg.eval.samples_per_label))


def rescore(cfg: DictConfig, results: list[dict]) -> list[dict]:
    """Score each result's generator config again on ``eval.samples_per_label`` samples per label.

    Each returned result holds the new metrics, and under ``trial`` the ones the sweep ran on.
    """
    _, device, models = job_models(cfg)
    reference = job_reference(cfg, device)
    rescored = []
    for result in results:
        # At the end of an Optuna sweep the study's summary and then the sweep folder's re-score their
        # best trials in this process, often the same ones: a configuration is re-scored once.
        latent = result.get("latent", str(cfg.latent.name))
        settings = OmegaConf.to_container(cfg.eval, resolve=True), OmegaConf.to_container(cfg.objective, resolve=True)
        done = json.dumps([result["config"], latent, models.fingerprint, settings], sort_keys=True)
        if done not in _rescored:
            _rescored[done] = rescore_one(cfg, result["config"], latent, models, device, reference)
        report = _rescored[done]
        trial = {k: result[k] for k in (*TRIAL_KEYS, *(k for k in SAMPLE_METRIC_KEYS if k in result))}
        rescored.append({**result, **report, "trial": trial, "models": models_record(models)})
    return rescored


_rescored: dict[str, dict] = {}  # rescore's reports in this process, by generator config, density, models and settings


def rescore_one(
    cfg: DictConfig, config: dict, latent: str, models: Models, device: torch.device, reference: RealReference
) -> dict:
    """One generator configuration scored on ``eval.samples_per_label`` samples per label with every metric (and CAS)."""
    from catvae.evaluation.evaluator import classify_in_bf16, evaluate_generator
    from catvae.generators.gaussian import build_generator
    from catvae.training.stages import cas_recipe

    generator = build_generator(OmegaConf.create(config))
    return evaluate_generator(
        generator,
        models.density(latent),
        models.decoder,
        models.classifier,
        int(cfg.eval.samples_per_label),
        int(cfg.eval.seed),
        str(cfg.objective.cos),
        classify_in_bf16(cfg, device),
        reference=reference,
        sample_metric_groups=METRIC_GROUPS,  # the best gets every metric, and CAS where eval.cas
        objective_classifier=str(cfg.objective.classifier),
        cas=cas_recipe(cfg),
    )


def score(cfg: DictConfig) -> float:
    """Validate ``cfg``; evaluate ``cfg.generator``; log to the configured loggers; once they are
    closed write ``result.json`` (the loggers' whole cost timed); return the objective.

    A job whose folder already holds the result of the same request (a re-run of a killed sweep
    into its folder, :mod:`catvae.sweep.jobs`) returns that objective without scoring or logging."""
    from catvae.sweep.jobs import finished_result, job_request

    started = time.perf_counter()
    job: dict = {}

    def recorded(cfg: DictConfig) -> dict | None:
        job["request"] = job_request(cfg, trial_samples(cfg))
        result = finished_result(Path(cfg.paths.output_dir) / RESULT_FILE, job["request"])
        if result is not None:
            print(
                f"{result['name']} θ={result['theta']} n={result['n']}: objective {result['objective']:.4f} "
                f"(recorded in {cfg.paths.output_dir})"
            )
        return result

    def evaluate(loggers: list) -> dict:
        from catvae.config.validate import check_against_artifacts
        from catvae.core.loggers import log_summary
        from catvae.evaluation.evaluator import classify_in_bf16, evaluate_generator
        from catvae.generators.gaussian import build_generator
        from catvae.sweep.records import resolve_generator
        from catvae.sweep.trials import job_trial_number

        samples = trial_samples(cfg)
        key, device, models = job_models(cfg)
        latent = str(cfg.latent.name)
        node = resolve_generator(cfg.generator, cfg.paths.search_records_dir, key, models, latent)  # from_search=best: θ, n
        check_against_artifacts(cfg, models.stats)
        generator = build_generator(node)
        density = models.density(latent)
        reference = job_reference(cfg, device)
        timing: dict[str, float] = {"load": time.perf_counter() - started}
        report = evaluate_generator(
            generator,
            density,
            models.decoder,
            models.classifier,
            samples,
            int(cfg.eval.seed),
            str(cfg.objective.cos),
            classify_in_bf16(cfg, device),
            timing,
            reference=reference,
            sample_metric_groups=list(cfg.eval.sample_metrics),
            objective_classifier=str(cfg.objective.classifier),
        )
        container = cast(dict[str, Any], OmegaConf.to_container(node, resolve=True))  # node is a DictConfig
        config = container | {"theta": report["theta"], "n": report["n"]}
        provenance_started = time.perf_counter()
        result = {
            "key": dataclasses.asdict(key),
            "config": config,
            "device": str(device),
            "models": models_record(models),
            **report,
            "search": str(cfg.search.name),  # how the configuration was chosen: grid, paper_grid, optuna
            "provenance": provenance(cfg, device),
            "request": job["request"],
            "process": process_record(),
        }
        timing["provenance"] = time.perf_counter() - provenance_started
        trial = job_trial_number()
        if trial is not None:
            result["optuna_trial"] = trial
        job.update(timing=timing, logging_started=time.perf_counter(), name=generator.name, result=result)
        for logger in loggers:
            logger.log_hyperparams(
                {
                    "generator": generator.params(models.stats),
                    "latent": latent,
                    "key": job["result"]["key"],
                    "eval": OmegaConf.to_container(cfg.eval),
                    "objective": OmegaConf.to_container(cfg.objective),
                    "judge_seed": int(cfg.judge.seed),
                }
            )
        log_summary(
            loggers,
            {name: report[name] for name in ("accuracy", "judge_accuracy", "cos_pairwise", "cos_to_mean", "objective")}
            | {name: report[name] for name in SAMPLE_METRIC_KEYS if name in report}
            | {"per_label": report["per_label"], "theta_eff": report["theta_eff"]},
        )
        return job["result"]

    def write(result: dict) -> None:
        timing = job["timing"]
        timing["log"] = time.perf_counter() - job["logging_started"]
        timing["total"] = time.perf_counter() - started
        # Wall-clock end, so a benchmark can measure each job's whole cost (Hydra's part included)
        # from the spacing of consecutive jobs of one multirun.
        result["timing_s"] = {**{k: round(v, 4) for k, v in timing.items()}, "finished_at": time.time()}
        write_json(result, Path(cfg.paths.output_dir) / RESULT_FILE)
        if "optuna_trial" in result:
            record_in_study(result, str(cfg.paths.output_dir))
        print(
            f"{job['name']} θ={result['theta']} n={result['n']}: accuracy {result['accuracy']:.4f} "
            f"(judge {result['judge_accuracy']:.4f}), cos_pairwise {result['cos_pairwise']:.4f}, "
            f"objective {result['objective']:.4f}"
        )

    result = run_task(cfg, validate_search, evaluate, after=write, done=recorded)
    return float(result["objective"])


def record_in_study(result: dict, job_dir: str) -> None:
    """Keep an Optuna job's scores in its trial too, where the process that finishes a shared study
    finds them (:mod:`catvae.sweep.study`: the processes may share no file system)."""
    from hydra.core.hydra_config import HydraConfig

    from catvae.sweep.study import record_trial_result

    sweeper = HydraConfig.get().sweeper
    record_trial_result(str(sweeper.storage), str(sweeper.study_name), int(result["optuna_trial"]), result, job_dir)


def gradient_search(cfg: DictConfig) -> float:
    """``search=gradient``: fit θ by gradient at each weight of ``search.weights`` (one run, no
    multirun; :mod:`catvae.sweep.gradient`), score each fitted θ with the true metrics like a trial,
    write them as the jobs of a sweep folder (the run folder), summarise it like any sweep (trials.csv,
    figure1.png, best.json, the search record) and return the best objective."""
    from catvae.sweep.gradient import run_gradient_search

    output_dir = Path(cfg.paths.output_dir)
    summary: dict = {}

    def body(loggers: list) -> dict:
        best = run_gradient_search(cfg, loggers, output_dir)
        summary.update(best)
        return best

    def after(best: dict) -> None:
        # The sweep summary opens a W&B run of its own: the search's run is closed by now.
        from catvae.sweep.summary import summarize

        outputs = summarize(
            output_dir, str(cfg.paths.search_records_dir), log_to_wandb="wandb" in (cfg.get("logger") or {}), project="catvae"
        )
        best = outputs["best"]
        print(
            f"best of {output_dir.name}: {best['name']} n={best['n']}: accuracy {best['accuracy']:.4f}, "
            f"cos_pairwise {best['cos_pairwise']:.4f}, objective {best['objective']:.4f}"
        )
        print(f"sweep summary: {output_dir}")
        summary.update(best)

    run_task(cfg, validate_search, body, after=after)
    return float(summary["objective"])


@hydra_command("search_job")
def main(cfg: DictConfig) -> float:
    if cfg.search.name == "gradient":
        return gradient_search(cfg)
    return score(cfg)


if __name__ == "__main__":
    run_main("catvae.search")
