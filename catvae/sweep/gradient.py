"""θ fitted by gradient (``search=gradient``): a whole trade-off front in one run, no multirun.

The generators of §3.5 draw z = centre + θ ⊙ spread, so the decoded image, and the classifier's
logits on it, are differentiable in θ (the reparameterisation trick). Eq. 4's objective is not:
accuracy counts argmaxes. A smooth surrogate stands in for it while θ is fitted:

    L_w(θ) = CE(classifier(decoder(z_θ)), y) + w · cos̄(decoder(z_θ))

where CE is the mean cross-entropy of the target labels (a surrogate for 1 − accuracy) and cos̄
the mean pairwise cosine similarity of eq. 5 within each label (differentiable as written in
:func:`catvae.evaluation.metrics.cosine_pairwise`). w = 0 asks for correct images only (θ shrinks);
a large w asks for diverse ones (θ grows). One Adam run per weight, each started from the previous
weight's θ (a continuation along the front, so later weights need few steps), projected onto
[0, ``theta_high``] after every step. Each fitted θ is then scored with the true metrics, like any
trial of a grid or Optuna sweep, and written as one job of a sweep folder, so the sweep summary
(trials.csv, figure1.png, best.json) and the search record (``generator.from_search=best``) are
the same as for the other searches.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from catvae.core.files import write_json
from catvae.core.loggers import log_summary
from catvae.densities.base import sample_codes
from catvae.densities.diag import ClassLatentStats
from catvae.evaluation.metrics import cosine_pairwise
from catvae.evaluation.sample_metrics import METRIC_GROUPS
from catvae.generators.gaussian import build_generator
from catvae.sweep.scoring import RESULT_FILE, SAMPLE_METRIC_KEYS, job_models, job_reference, models_record
from catvae.sweep.settings import GradientSettings, SearchJob
from catvae.sweep.summary import summarize

log = logging.getLogger(__name__)

# (θ as an L×D tensor, target labels K, noise generator) → K×D codes, differentiable in θ
CodeSampler = Callable[[torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]
# (codes K×D, labels K) → images K×784 in [0, 1], differentiable
Decode = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# images K×784 → logits K×L, differentiable
Classify = Callable[[torch.Tensor], torch.Tensor]


def full_theta(theta: torch.Tensor, num_classes: int, latent_dim: int) -> torch.Tensor:
    """θ of any generator's shape (Simple: (), Medium-1: (D,), Medium-2: (L, D)) broadcast to L×D."""
    return theta.expand(num_classes, latent_dim)


def surrogate(images: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, weight: float) -> dict[str, torch.Tensor]:
    """The smooth stand-in for eq. 4 (see the module docstring): ``loss`` = ``ce`` + weight · ``cos``."""
    ce = F.cross_entropy(logits.float(), labels)
    cos = torch.stack([cosine_pairwise(images[labels == label]) for label in labels.unique()]).mean()
    return {"loss": ce + weight * cos, "ce": ce, "cos": cos}


def fit_theta(
    sample: CodeSampler,
    decode: Decode,
    classify: Classify,
    init: torch.Tensor,
    num_classes: int,
    latent_dim: int,
    weight: float,
    settings: GradientSettings,
    seed: int,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Fit θ (the shape of ``init``) by Adam on the surrogate at ``weight``; fresh noise every step
    (``settings.batch_per_label`` codes per label) from a generator seeded with ``seed``.
    Returns θ (detached, clamped to [0, theta_high]) and the last step's surrogate terms."""
    theta = init.detach().clone().double().requires_grad_(True)
    optimiser = torch.optim.Adam([theta], lr=settings.lr)
    labels = torch.arange(num_classes).repeat_interleave(settings.batch_per_label)
    noise = torch.Generator().manual_seed(seed)
    terms: dict[str, torch.Tensor] = {}
    for _ in range(settings.steps):
        optimiser.zero_grad(set_to_none=True)
        codes = sample(full_theta(theta, num_classes, latent_dim).float(), labels, noise)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=settings.bf16):
            images = decode(codes, labels)
            logits = classify(images)
        terms = surrogate(images.float(), logits, labels.to(logits.device), weight)
        terms["loss"].backward()
        optimiser.step()
        with torch.no_grad():
            theta.clamp_(0.0, settings.theta_high)
    return theta.detach(), {name: float(value.detach()) for name, value in terms.items()}


def fit_front(
    sample: CodeSampler,
    decode: Decode,
    classify: Classify,
    shape: tuple[int, ...],
    num_classes: int,
    latent_dim: int,
    settings: GradientSettings,
    seed: int,
) -> list[dict]:
    """One fitted θ per weight, in the order of ``settings.weights``, each starting from the previous
    one's θ (the first from ``theta_init`` everywhere). Each entry: weight, θ, the last surrogate
    terms and the seconds it took."""
    theta = torch.full(shape, settings.theta_init, dtype=torch.float64)
    points = []
    for index, weight in enumerate(settings.weights):
        started = time.perf_counter()
        theta, terms = fit_theta(sample, decode, classify, theta, num_classes, latent_dim, weight, settings, seed + index)
        seconds = time.perf_counter() - started
        log.info("weight %g: θ mean %.3f, surrogate %s (%.1f s)", weight, float(theta.mean()), terms, seconds)
        points.append({"weight": weight, "theta": theta, "surrogate": terms, "seconds": seconds})
    return points


@contextlib.contextmanager
def frozen(*modules: torch.nn.Module) -> Iterator[None]:
    """The modules' parameters need no gradient while θ is fitted (half of each backward pass saved);
    restored afterwards (the models are cached for the whole process)."""
    parameters = [p for module in modules for p in module.parameters() if p.requires_grad]
    for parameter in parameters:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in parameters:
            parameter.requires_grad_(True)


def run_gradient_search(
    job: SearchJob,
    loggers: list,
    output_dir: Path,
    check_models: Callable[[ClassLatentStats], None],
) -> dict:
    """Fit the front (``job.method``: :class:`GradientSettings`) on the job's trained models
    (``check_models``: the config checked against their statistics first), score every point on
    ``eval.samples_per_label`` samples per label (eval seed, like every trial), write each as
    ``output_dir/<i>/result.json`` and log it; returns the best result by the objective."""
    settings, evaluation = job.method, job.evaluation
    if not isinstance(settings, GradientSettings):
        raise TypeError(f"a gradient search needs GradientSettings, not {type(settings).__name__}")
    started = time.perf_counter()
    key, device, models = job_models(job.models)
    check_models(models.stats)
    node = {**job.generator, "theta": None, "from_search": None}
    base = build_generator(node)
    stats = models.stats
    density = models.density(job.latent)
    reference = job_reference(job.models)
    objective_classifier = evaluation.objective_classifier
    # The surrogate's cross-entropy is that of the classifier whose accuracy the objective counts.
    classifier = reference.judge if objective_classifier == "judge" else models.classifier

    def sample(theta: torch.Tensor, labels: torch.Tensor, noise: torch.Generator) -> torch.Tensor:
        return sample_codes(density, theta, base.n, labels, noise)

    def decode(codes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(models.decoder(codes, labels))

    with frozen(models.decoder, classifier):
        points = fit_front(
            sample,
            decode,
            classifier,
            base.theta_shape(stats),
            stats.num_classes,
            stats.latent_dim,
            settings,
            evaluation.seed,
        )
    fit_seconds = time.perf_counter() - started

    def score(config: dict, groups: Sequence[str], cas: Mapping[str, Any] | None = None) -> dict:
        """The true metrics of one fitted θ, like a trial's, on the eval seed's samples."""
        chosen = evaluation.replace(sample_metric_groups=tuple(groups), cas=cas)
        return chosen.score(build_generator(config), density, models.decoder, models.classifier, reference)

    results = []
    for index, point in enumerate(points):
        theta = point["theta"]
        fitted = theta.item() if theta.dim() == 0 else theta.tolist()
        config = node | {"theta": fitted}
        report = score(config, METRIC_GROUPS)  # a handful of points: each gets every metric (CAS: the best only)
        result = {
            "key": dataclasses.asdict(key),
            "config": config | {"theta": report["theta"], "n": report["n"]},
            "device": str(device),
            "models": models_record(models),
            **report,
            "search": "gradient",
            "gradient": {
                "weight": point["weight"],
                "surrogate": point["surrogate"],
                "steps": settings.steps,
                "fit_s": round(point["seconds"], 2),
            },
            "provenance": job.provenance(),
        }
        write_json(result, output_dir / str(index) / RESULT_FILE)
        logged = ("accuracy", "judge_accuracy", "cos_pairwise", "objective", *SAMPLE_METRIC_KEYS)
        log_summary(loggers, {f"weight_{index}": {k: report[k] for k in logged if k in report} | {"weight": point["weight"]}})
        log.info(
            "weight %g: accuracy %.4f, cos_pairwise %.4f, objective %.4f",
            point["weight"],
            report["accuracy"],
            report["cos_pairwise"],
            report["objective"],
        )
        results.append(result)
    scoring_seconds = time.perf_counter() - started - fit_seconds
    log.info("fitted %d points in %.1f s, scored them in %.1f s", len(points), fit_seconds, scoring_seconds)
    best = min(range(len(results)), key=lambda i: results[i]["objective"])
    if evaluation.cas is not None:
        # CAS trains a classifier on the samples: for the best point only, as a sweep's re-scored best.
        results[best]["cas"] = score(results[best]["config"], (), evaluation.cas)["cas"]
        write_json(results[best], output_dir / str(best) / RESULT_FILE)
    return results[best]


def summarize_gradient_search(job: SearchJob, output_dir: Path) -> dict:
    """Summarise a gradient search's run folder like any sweep (trials.csv, figure1.png, best.json, the
    search record), print its best and return it."""
    # The sweep summary opens a W&B run of its own: the search's run is closed by now.
    outputs = summarize(output_dir, job.records_dir, log_to_wandb=job.wandb, project="catvae")
    best = outputs["best"]
    print(
        f"best of {output_dir.name}: {best['name']} n={best['n']}: accuracy {best['accuracy']:.4f}, "
        f"cos_pairwise {best['cos_pairwise']:.4f}, objective {best['objective']:.4f}"
    )
    print(f"sweep summary: {output_dir}")
    return best
