"""A toy sample metric group added from outside catvae (the extension test): the mean pixel value.

Named in ``eval.sample_metrics`` by a ``_target_`` node (``{_target_: toy_metric.MeanBrightness}``);
it declares its result key and title like catvae's own groups (catvae.evaluation.metric_keys).
"""

from __future__ import annotations

import torch

from catvae.evaluation.metric_keys import MetricKey


class MeanBrightness:
    """``brightness``: the mean of every pixel of the samples, overall (``"all"``) and per label."""

    keys = (MetricKey("brightness", "mean brightness"),)

    def __call__(self, reference, images: torch.Tensor, labels: torch.Tensor) -> dict[str, dict[str, float]]:
        scores = {"all": {"brightness": float(images.double().mean())}}
        for label in labels.unique().tolist():
            scores[str(label)] = {"brightness": float(images[labels == label].double().mean())}
        return scores
