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
import time
import warnings
from pathlib import Path

import hydra
import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from catvae.core.artifacts import ArtifactKey, Models, load_models
from catvae.core.files import write_json
from catvae.core.config import TRUSTED_TARGETS, ConfigError, exit_on_user_error
from catvae.core.device import resolve_device
from catvae.core.errors import UserError
from catvae.core.provenance import provenance

RESULT_FILE = "result.json"
warnings.filterwarnings("ignore", message=".*LeafSpec.*")


@functools.lru_cache(maxsize=4)
def cached_models(key: ArtifactKey, artifacts_dir: str, device: str) -> Models:
    """Models and statistics load once per process (onto ``device``), however many jobs the launcher runs in it."""
    return load_models(key, artifacts_dir, device)


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
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise ConfigError("search.trial_samples_per_label", samples, "null or an integer >= 2 (pairs are needed)")
    return min(samples, int(cfg.eval.samples_per_label))


def rescore(cfg: DictConfig, results: list[dict]) -> list[dict]:
    """Score each result's generator config again on ``eval.samples_per_label`` samples per label.

    Each returned result holds the new metrics, and under ``trial`` the ones the sweep ran on.
    """
    from catvae.latent.evaluation import classify_in_bf16, evaluate_generator
    from catvae.latent.generators import build_generator

    _, device, models = job_models(cfg)
    rescored = []
    for result in results:
        generator = build_generator(OmegaConf.create(result["config"]))
        report = evaluate_generator(generator, models.stats, models.decoder, models.classifier,
                                    int(cfg.eval.samples_per_label), int(cfg.eval.seed), str(cfg.objective.cos),
                                    classify_in_bf16(cfg, device))
        trial = {k: result[k] for k in ("samples_per_label", "accuracy", "cos_pairwise", "cos_to_mean", "objective")}
        rescored.append({**result, **report, "trial": trial, "models": models_record(models)})
    return rescored


@exit_on_user_error(UserError, InstantiationException)
def score(cfg: DictConfig) -> float:
    """Evaluate ``cfg.generator``; write ``result.json``; log to the configured loggers; return the objective."""
    from catvae.latent.evaluation import check_eval_config, classify_in_bf16, evaluate_generator
    from catvae.latent.generators import build_generator
    from catvae.core.loggers import build_loggers, close_loggers, log_summary
    from catvae.sweep.records import resolve_generator
    from catvae.sweep.jobs import finished_result, job_request
    from catvae.sweep.trials import job_trial_number

    started = time.perf_counter()
    check_eval_config(cfg)
    samples = trial_samples(cfg)
    request = job_request(cfg, samples)
    recorded = finished_result(Path(cfg.paths.output_dir) / RESULT_FILE, request)
    if recorded is not None:  # a re-run of a killed sweep: this job had finished
        print(f"{recorded['name']} θ={recorded['theta']} n={recorded['n']}: objective {recorded['objective']:.4f} "
              f"(recorded in {cfg.paths.output_dir})")
        return float(recorded["objective"])
    key, device, models = job_models(cfg)
    node = resolve_generator(cfg.generator, cfg.paths.search_records_dir, key, models)  # from_search=best: θ, n
    generator = build_generator(node)
    timing: dict[str, float] = {"load": time.perf_counter() - started}
    report = evaluate_generator(generator, models.stats, models.decoder, models.classifier, samples,
                                int(cfg.eval.seed), str(cfg.objective.cos), classify_in_bf16(cfg, device), timing)
    config = OmegaConf.to_container(node, resolve=True) | {"theta": report["theta"], "n": report["n"]}
    provenance_started = time.perf_counter()
    result = {"key": dataclasses.asdict(key), "config": config, "device": str(device), "models": models_record(models),
              **report, "provenance": provenance(cfg, device)}
    timing["provenance"] = time.perf_counter() - provenance_started
    result["request"] = request
    trial = job_trial_number()
    if trial is not None:
        result["optuna_trial"] = trial
    logging_started = time.perf_counter()
    loggers = build_loggers(cfg.get("logger"))
    status = "failed"
    try:
        for logger in loggers:
            logger.log_hyperparams({"generator": generator.params(models.stats), "key": result["key"],
                                    "eval": OmegaConf.to_container(cfg.eval), "objective": OmegaConf.to_container(cfg.objective)})
        log_summary(loggers, {name: report[name] for name in ("accuracy", "cos_pairwise", "cos_to_mean", "objective")}
                    | {"per_label": report["per_label"], "theta_eff": report["theta_eff"]})
        status = "success"
    finally:
        close_loggers(loggers, status)
    timing["log"] = time.perf_counter() - logging_started
    timing["total"] = time.perf_counter() - started
    # Wall-clock end, so a benchmark can measure each job's whole cost (Hydra's part included)
    # from the spacing of consecutive jobs of one multirun.
    result["timing_s"] = {**{k: round(v, 4) for k, v in timing.items()}, "finished_at": time.time()}
    write_json(result, Path(cfg.paths.output_dir) / RESULT_FILE)
    print(f"{generator.name} θ={report['theta']} n={report['n']}: accuracy {report['accuracy']:.4f}, "
          f"cos_pairwise {report['cos_pairwise']:.4f}, objective {report['objective']:.4f}")
    return float(report["objective"])


@hydra.main(config_path="conf", config_name="search_job", execution_whitelist=TRUSTED_TARGETS)
def main(cfg: DictConfig) -> float:
    return score(cfg)


if __name__ == "__main__":
    main()
