"""``python -m catvae.search -m vae=… latent_dim=… generator=… search=paper_grid|optuna``

Each job scores one generator configuration on the trained artifacts of (data, vae, latent_dim,
seed) with the metrics of eq. 4–5 and returns the objective to Hydra's sweeper (the basic
sweeper's grid, or Optuna). Every job writes ``result.json`` in its folder and is one W&B run
(group = the sweep, job type ``search``); at the end of the sweep :mod:`catvae.sweep.summary`
writes ``trials.csv``, ``figure1.png`` and the best configuration.
"""

from __future__ import annotations

import functools
import time
import warnings
from pathlib import Path

from omegaconf import DictConfig

from catvae.config.settings import search_job
from catvae.config.sweeper import study_trial
from catvae.config.task import hydra_command, run_main, run_task
from catvae.config.validate import check_against_artifacts, validate_search
from catvae.sweep.gradient import run_gradient_search, summarize_gradient_search
from catvae.sweep.scoring import recorded_result, score_job, write_result

warnings.filterwarnings("ignore", message=".*LeafSpec.*")


def score(cfg: DictConfig) -> float:
    """Validate ``cfg``; evaluate its generator (:func:`catvae.sweep.scoring.score_job`); log to the
    configured loggers; once they are closed write ``result.json`` (the loggers' whole cost timed);
    return the objective.

    A job whose folder already holds the result of the same request (a re-run of a killed sweep
    into its folder, :mod:`catvae.sweep.jobs`) returns that objective without scoring or logging."""
    started = time.perf_counter()
    job: dict = {}
    settings = functools.cache(lambda: search_job(cfg, study_trial()))  # built once, validated: run_task's done asks first
    result = run_task(
        cfg,
        validate_search,
        lambda loggers: score_job(settings(), loggers, job, started, lambda stats: check_against_artifacts(cfg, stats)),
        after=lambda result: write_result(settings(), job, started, result),
        done=lambda cfg: recorded_result(settings(), job),
    )
    return float(result["objective"])


def gradient_search(cfg: DictConfig) -> float:
    """``search=gradient``: fit θ by gradient at each weight of ``search.weights`` (one run, no
    multirun; :mod:`catvae.sweep.gradient`), score each fitted θ with the true metrics like a trial,
    write them as the jobs of a sweep folder (the run folder), summarise it like any sweep (trials.csv,
    figure1.png, best.json, the search record) and return the best objective."""
    output_dir = Path(cfg.paths.output_dir)
    summary: dict = {}
    settings = functools.cache(lambda: search_job(cfg))  # built once, after validation

    def body(loggers: list) -> dict:
        best = run_gradient_search(settings(), loggers, output_dir, lambda s: check_against_artifacts(cfg, s))
        summary.update(best)
        return best

    run_task(cfg, validate_search, body, after=lambda best: summary.update(summarize_gradient_search(settings(), output_dir)))
    return float(summary["objective"])


@hydra_command("search_job")
def main(cfg: DictConfig) -> float:
    if cfg.search.name == "gradient":
        return gradient_search(cfg)
    return score(cfg)


if __name__ == "__main__":
    run_main("catvae.search")
