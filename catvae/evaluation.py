"""Scoring a generator on trained artifacts: draw codes per label, decode, classify, eq. 4–5."""
from __future__ import annotations

from omegaconf import DictConfig

from catvae.config import ConfigError, positive_int
from catvae.generators import generate_images, target_labels
from catvae.metrics import COS_CHOICES, score_samples
from catvae.networks import ClassifierNet, Decoder
from catvae.statistics import ClassLatentStats


def check_eval_config(cfg: DictConfig) -> int:
    """Validate ``eval.samples_per_label`` (≥ 2: pairs are needed) and ``objective.cos``; return the former."""
    samples = positive_int(cfg, "eval.samples_per_label")
    if samples < 2:
        raise ConfigError("eval.samples_per_label", samples, "an integer >= 2 (pairs are needed)")
    if cfg.objective.cos not in COS_CHOICES:
        raise ConfigError("objective.cos", cfg.objective.cos, f"one of {', '.join(COS_CHOICES)}")
    return samples


def class_mean_check(stats: ClassLatentStats, decoder: Decoder, classifier: ClassifierNet) -> dict:
    """Decode each μ_y and classify it: does the class mean look like its class?"""
    predicted = classifier.predict(decoder.images(stats.mean)).tolist()
    return {
        "predicted": predicted,
        "all_correct": all(p == y for y, p in enumerate(predicted)),
        "num_correct": sum(p == y for y, p in enumerate(predicted)),
    }


def evaluate_generator(generator, stats: ClassLatentStats, decoder: Decoder, classifier: ClassifierNet,
                       samples_per_label: int, seed: int, cos: str = "pairwise") -> dict:
    """The generator's parameters and all metrics of eq. 4–5 on ``samples_per_label`` samples per label."""
    labels = target_labels(stats.num_classes, samples_per_label)
    images = generate_images(generator, stats, decoder, labels, seed)
    predictions = classifier.predict(images)
    scores = score_samples(images, labels, predictions, decoder.images(stats.mean), stats.num_classes, cos)
    return {**generator.params(stats), "samples_per_label": samples_per_label, "seed": seed, "cos": cos, **scores}
