"""Scoring a generator on trained artifacts: draw codes per label, decode, classify, eq. 4–5."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torchmetrics.functional.classification import multiclass_accuracy

from catvae.core.device import fast_bf16
from catvae.densities.base import ClassDensity
from catvae.evaluation.metrics import cosine_pairwise, score_samples
from catvae.evaluation.sample_metrics import RealReference, judge_outputs, sample_metrics
from catvae.generators.gaussian import target_labels
from catvae.models.networks import ClassifierNet, ImageDecoder

EVAL_PRECISIONS = ("auto", "32", "bf16")  # eval.precision: bf16 where native, fp32, bf16
OBJECTIVE_CLASSIFIERS = ("paper", "judge")  # objective.classifier: whose accuracy enters eq. 4


def bf16_where(precision: str, device: torch.device) -> bool:
    """Whether the classifier scores samples in bf16 (``ClassifierNet.predict(bf16=True)``) for
    ``eval.precision``: ``bf16`` always, ``auto`` where bf16 is native on ``device`` (the README shows
    the accuracy it gives matches fp32's within 0.001), ``32`` never."""
    return precision == "bf16" or (precision == "auto" and fast_bf16(device))


class StageClock:
    """Seconds per stage into ``timing`` (nothing when it is None); on a GPU each lap waits for
    the device, so the split is honest. It costs nothing when not asked for."""

    def __init__(self, device: torch.device, timing: dict[str, float] | None):
        self.timing, self.sync = timing, device.type == "cuda"
        self.last = time.perf_counter()

    def lap(self, stage: str) -> None:
        if self.timing is None:
            return
        if self.sync:
            torch.cuda.synchronize()
        now = time.perf_counter()
        self.timing[stage] = now - self.last
        self.last = now


def class_mean_images(stats: ClassDensity, decoder: ImageDecoder) -> torch.Tensor:
    """The decoded class means μ_y (L×784), each decoded with its label y (a CVAE needs it)."""
    return decoder.images(stats.mean, torch.arange(stats.num_classes, device=stats.mean.device))


def class_mean_check(stats: ClassDensity, decoder: ImageDecoder, classifier: ClassifierNet, bf16: bool = False) -> dict:
    """Decode each class mean μ_y of the density and classify it: does the class mean look like its class?

    For a mixture (more than one component in some class) also each component mean μ_{y,k}:
    ``components_correct`` is the share of components decoded into their own class, each weighted
    by its mixture weight w_{y,k} (averaged over classes: 1.0 when every mode looks like its class),
    and ``modes``: the label of each class's heaviest component mean decoded (the mixture's main
    mode, where a sample is most likely; a mixture's *mean* can fall between modes, in another
    class's region, as μ_4 of ELBO-2 does), with ``modes_correct`` counting those in their own class."""
    predicted = classifier.predict(class_mean_images(stats, decoder), bf16=bf16).tolist()
    check: dict = {
        "predicted": predicted,
        "all_correct": all(p == y for y, p in enumerate(predicted)),
        "num_correct": sum(p == y for y, p in enumerate(predicted)),
    }
    components = stats.gaussian_components()
    if components is not None and any(len(weights) > 1 for weights, _, _ in components):
        shares, modes = [], []
        for label, (weights, means, _) in enumerate(components):
            labels = torch.full((len(means),), label, dtype=torch.long, device=means.device)
            decoded = classifier.predict(decoder.images(means, labels), bf16=bf16)
            right = decoded == label
            shares.append(float((weights * right.to(weights)).sum() / weights.sum()))
            modes.append(int(decoded[int(weights.argmax())]))
        check["components_correct"] = round(sum(shares) / len(shares), 6)
        check["components_correct_per_label"] = [round(share, 6) for share in shares]
        check["modes"] = modes
        check["modes_correct"] = sum(mode == label for label, mode in enumerate(modes))
    return check


def judge_scores(
    reference: RealReference,
    images: torch.Tensor,
    labels: torch.Tensor,
    groups: Sequence[str] = (),
    timing: dict[str, float] | None = None,
) -> dict:
    """The judge's view of ``images`` with target ``labels``: ``judge_accuracy`` and the sample
    metric ``groups`` (:mod:`catvae.evaluation.sample_metrics`), overall (mean over labels, like
    eq. 4's accuracy; the feature metrics on all samples at once) and under ``per_label``."""
    clock = StageClock(images.device, timing)
    predictions, features = judge_outputs(reference.judge, images, reference.bf16)
    clock.lap("judge")
    accuracy = multiclass_accuracy(predictions, labels.to(predictions.device), reference.num_classes, average="none")
    metrics = sample_metrics(reference, images, labels, groups, features, timing)
    present = labels.unique().tolist()
    per_label = {str(y): {"judge_accuracy": float(accuracy[y]), **metrics.get(str(y), {})} for y in present}
    overall = {"judge_accuracy": sum(row["judge_accuracy"] for row in per_label.values()) / len(per_label)}
    return {**overall, **metrics.get("all", {}), "per_label": per_label}


def reference_scores(reference: RealReference, images: torch.Tensor, labels: torch.Tensor, groups: Sequence[str]) -> dict:
    """Real or reconstructed images scored like generated ones: :func:`judge_scores` and
    ``cos_pairwise`` (eq. 5 within each label, averaged over labels) — the points a generator is compared with."""
    scores = judge_scores(reference, images, labels, groups)
    for y, row in scores["per_label"].items():
        row["cos_pairwise"] = float(cosine_pairwise(images[labels == int(y)])) if int((labels == int(y)).sum()) >= 2 else math.nan
    rows = scores["per_label"].values()
    return {"count": len(images), "cos_pairwise": sum(row["cos_pairwise"] for row in rows) / len(rows), **scores}


def evaluate_generator(
    generator,
    stats: ClassDensity,
    decoder: ImageDecoder,
    classifier: ClassifierNet,
    samples_per_label: int,
    seed: int,
    cos: str = "pairwise",
    bf16: bool = False,
    timing: dict[str, float] | None = None,
    reference: RealReference | None = None,
    sample_metric_groups: Sequence[str] = (),
    objective_classifier: str = "paper",
    cas: Mapping[str, Any] | None = None,
) -> dict:
    """The generator's parameters, the class density's name (``latent``) and all metrics of eq. 4–5
    on ``samples_per_label`` samples per label drawn from the density ``stats``, computed on its
    device; ``bf16`` classifies with a bf16 copy of the network.
    ``timing``, if given, receives the seconds spent sampling, decoding, classifying and scoring.

    With a ``reference`` (the judge and the real images, :class:`RealReference`), also
    ``judge_accuracy`` and the ``sample_metric_groups`` (fid, prdc, novelty); ``cas`` (the CAS
    classifier's ``epochs``, ``batch_size``, ``lr``) adds the Classification Accuracy Score.
    ``objective_classifier``: whose accuracy enters eq. 4's objective, the paper's classifier
    (``paper``) or the judge (``judge``).
    """
    if objective_classifier not in OBJECTIVE_CLASSIFIERS:
        raise ValueError(
            f"objective_classifier={objective_classifier!r} is not allowed: one of {', '.join(OBJECTIVE_CLASSIFIERS)}"
        )
    if objective_classifier == "judge" and reference is None:
        raise ValueError("objective_classifier='judge' needs the judge (a reference)")
    clock = StageClock(stats.mean.device, timing)
    labels = target_labels(stats.num_classes, samples_per_label).to(stats.mean.device)
    codes = generator.sample(stats, labels, torch.Generator().manual_seed(seed))
    clock.lap("sample")
    images = decoder.images(codes, labels)  # a conditional decoder (CVAE) draws the target class
    clock.lap("decode")
    predictions = classifier.predict(images, bf16=bf16)
    clock.lap("classify")
    scores = score_samples(images, labels, predictions, class_mean_images(stats, decoder), stats.num_classes, cos)
    clock.lap("score")
    if reference is not None:
        judged = judge_scores(reference, images, labels, sample_metric_groups, timing)
        clock.last = time.perf_counter()
        for y, row in judged.pop("per_label").items():
            scores["per_label"][y].update(row)
        scores.update(judged)
        if objective_classifier == "judge":
            for row in scores["per_label"].values():
                row["objective"] = row[f"cos_{cos}"] + 1.0 - row["judge_accuracy"]
            rows = scores["per_label"].values()
            scores["objective"] = sum(row["objective"] for row in rows) / len(rows)
        if cas is not None:
            scores["cas"] = reference.cas(images, labels, int(cas["epochs"]), int(cas["batch_size"]), float(cas["lr"]), seed)
            clock.lap("cas")
    return {
        **generator.params(stats),
        "latent": stats.name,
        "samples_per_label": samples_per_label,
        "seed": seed,
        "cos": cos,
        "classifier_precision": "bf16" if bf16 else "32",
        "objective_classifier": objective_classifier,
        **scores,
    }


@dataclass(frozen=True)
class EvaluationSettings:
    """How a generator is scored (:func:`evaluate_generator`'s settings), read once from the config
    (:func:`catvae.config.settings.evaluation_settings`) where a command starts its work and handed down: train's evaluation, a
    search job, a sweep's re-scored best, each point of a gradient search and the benchmark all
    score through :meth:`score`."""

    samples_per_label: int
    seed: int
    cos: str = "pairwise"  # objective.cos: eq. 5's pairwise, or to the class mean
    precision: str = "32"  # eval.precision (:data:`EVAL_PRECISIONS`), resolved on the density's device
    # eval.sample_metrics (needs a reference): built-in group names, or _target_ nodes of one's own (plain dicts)
    sample_metric_groups: tuple[Any, ...] = ()
    objective_classifier: str = "paper"  # objective.classifier (:data:`OBJECTIVE_CLASSIFIERS`)
    cas: Mapping[str, Any] | None = None  # CAS's classifier recipe (epochs, batch_size, lr); None: no CAS

    def replace(self, **changes: Any) -> EvaluationSettings:
        """These settings with ``changes`` (e.g. a search trial's fewer samples, or every metric for a best)."""
        return dataclasses.replace(self, **changes)

    def score(
        self,
        generator,
        stats: ClassDensity,
        decoder: ImageDecoder,
        classifier: ClassifierNet,
        reference: RealReference | None = None,
        timing: dict[str, float] | None = None,
    ) -> dict:
        """:func:`evaluate_generator` of ``generator`` on the density ``stats`` (on its device) with these settings."""
        return evaluate_generator(
            generator,
            stats,
            decoder,
            classifier,
            self.samples_per_label,
            self.seed,
            self.cos,
            bf16_where(self.precision, stats.mean.device),
            timing,
            reference=reference,
            sample_metric_groups=list(self.sample_metric_groups),
            objective_classifier=self.objective_classifier,
            cas=self.cas,
        )
