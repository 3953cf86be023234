"""Scoring a generator on trained artifacts: draw codes per label, decode, classify, eq. 4–5."""

from __future__ import annotations

import time

import torch
from omegaconf import DictConfig

from catvae.core.device import fast_bf16
from catvae.latent.generators import target_labels
from catvae.latent.metrics import score_samples
from catvae.latent.statistics import ClassLatentStats
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


def class_mean_images(stats: ClassLatentStats, decoder: ImageDecoder) -> torch.Tensor:
    """The decoded class means μ_y (L×784), each decoded with its label y (a CVAE needs it)."""
    return decoder.images(stats.mean, torch.arange(stats.num_classes, device=stats.mean.device))


def class_mean_check(stats: ClassLatentStats, decoder: ImageDecoder, classifier: ClassifierNet, bf16: bool = False) -> dict:
    """Decode each μ_y and classify it: does the class mean look like its class?"""
    predicted = classifier.predict(class_mean_images(stats, decoder), bf16=bf16).tolist()
    return {
        "predicted": predicted,
        "all_correct": all(p == y for y, p in enumerate(predicted)),
        "num_correct": sum(p == y for y, p in enumerate(predicted)),
    }


def evaluate_generator(
    generator,
    stats: ClassLatentStats,
    decoder: ImageDecoder,
    classifier: ClassifierNet,
    samples_per_label: int,
    seed: int,
    cos: str = "pairwise",
    bf16: bool = False,
    timing: dict[str, float] | None = None,
) -> dict:
    """The generator's parameters and all metrics of eq. 4–5 on ``samples_per_label`` samples per
    label, computed on the statistics' device; ``bf16`` classifies with a bf16 copy of the network.
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
        "samples_per_label": samples_per_label,
        "seed": seed,
        "cos": cos,
        "classifier_precision": "bf16" if bf16 else "32",
        **scores,
    }
