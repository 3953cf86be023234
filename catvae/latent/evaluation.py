"""Scoring a generator on trained artifacts: draw codes per label, decode, classify, eq. 4–5."""

from __future__ import annotations

import time

import torch
from omegaconf import DictConfig

from catvae.core.device import fast_bf16
from catvae.latent.densities import ClassDensity
from catvae.latent.generators import target_labels
from catvae.latent.metrics import score_samples
from catvae.models.networks import ClassifierNet, ImageDecoder

EVAL_PRECISIONS = ("auto", "32", "bf16")  # eval.precision: bf16 where native, fp32, bf16


def classify_in_bf16(cfg: DictConfig, device: torch.device) -> bool:
    """Whether the classifier scores samples in bf16 (``ClassifierNet.predict(bf16=True)``):
    ``eval.precision=auto`` does so where bf16 is native (the README shows the accuracy it gives
    matches fp32's within 0.001)."""
    precision = str(cfg.eval.get("precision", "auto"))
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
    by its mixture weight w_{y,k} (averaged over classes: 1.0 when every mode looks like its class)."""
    predicted = classifier.predict(class_mean_images(stats, decoder), bf16=bf16).tolist()
    check: dict = {
        "predicted": predicted,
        "all_correct": all(p == y for y, p in enumerate(predicted)),
        "num_correct": sum(p == y for y, p in enumerate(predicted)),
    }
    components = stats.gaussian_components()
    if components is not None and any(len(weights) > 1 for weights, _, _ in components):
        shares = []
        for label, (weights, means, _) in enumerate(components):
            labels = torch.full((len(means),), label, dtype=torch.long, device=means.device)
            right = classifier.predict(decoder.images(means, labels), bf16=bf16) == label
            shares.append(float((weights * right.to(weights)).sum() / weights.sum()))
        check["components_correct"] = round(sum(shares) / len(shares), 6)
        check["components_correct_per_label"] = [round(share, 6) for share in shares]
    return check


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
) -> dict:
    """The generator's parameters, the class density's name (``latent``) and all metrics of eq. 4–5
    on ``samples_per_label`` samples per label drawn from the density ``stats``, computed on its
    device; ``bf16`` classifies with a bf16 copy of the network.
    ``timing``, if given, receives the seconds spent sampling, decoding, classifying and scoring."""
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
    return {
        **generator.params(stats),
        "latent": stats.name,
        "samples_per_label": samples_per_label,
        "seed": seed,
        "cos": cos,
        "classifier_precision": "bf16" if bf16 else "32",
        **scores,
    }
