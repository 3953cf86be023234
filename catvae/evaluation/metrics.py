"""Eq. 4–5: the scores of a set of generated images with target labels.

- ``accuracy``: share of samples the classifier assigns to their target label;
- ``cos_pairwise``: mean cosine similarity (eq. 5) over pairs of distinct samples of one label;
- ``cos_to_mean``: mean cosine similarity between each sample and the decoded class mean (§3.2);
- ``objective`` (eq. 4) = cos + (1 − accuracy), cos being ``cos_pairwise`` or ``cos_to_mean``.
Each is reported overall (mean over labels) and per label.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import multiclass_accuracy

COS_CHOICES = ("pairwise", "to_mean")


def cosine_pairwise(images: torch.Tensor) -> torch.Tensor:
    """Mean of cos(x_i, x_j) over all ordered pairs i ≠ j of the K rows of ``images`` (K ≥ 2).

    With unit rows u_i, Σ_{i≠j} u_i·u_j = ‖Σ_i u_i‖² − K, so no K×K matrix is formed.
    """
    k = images.shape[0]
    if k < 2:
        raise ValueError(f"cosine_pairwise needs at least 2 samples, got {k}")
    units = F.normalize(images.flatten(1).double(), dim=1)
    total = units.sum(dim=0)
    return ((total @ total - k) / (k * (k - 1))).float()


def cosine_to_reference(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean of cos(x_i, reference) over the rows of ``images``."""
    return F.cosine_similarity(images.flatten(1), reference.flatten().unsqueeze(0), dim=1).mean()


def score_samples(
    images: torch.Tensor,
    targets: torch.Tensor,
    predictions: torch.Tensor,
    class_mean_images: torch.Tensor,
    num_classes: int,
    cos: str = "pairwise",
) -> dict:
    """All metrics of eq. 4–5 for K generated images (K×784), overall and per label.

    ``class_mean_images`` holds the decoded class means (L×784). Labels without samples are skipped.
    """
    if cos not in COS_CHOICES:
        raise ValueError(f"cos={cos!r} is not allowed: one of {', '.join(COS_CHOICES)}")
    per_label_acc = multiclass_accuracy(predictions, targets, num_classes, average="none")
    rows = {}
    for label in targets.unique().tolist():
        members = images[targets == label]
        rows[label] = {
            "accuracy": float(per_label_acc[label]),
            "cos_pairwise": float(cosine_pairwise(members)),
            "cos_to_mean": float(cosine_to_reference(members, class_mean_images[label])),
        }
    for row in rows.values():
        row["objective"] = row[f"cos_{cos}"] + 1.0 - row["accuracy"]
    overall = {
        name: sum(row[name] for row in rows.values()) / len(rows)
        for name in ("accuracy", "cos_pairwise", "cos_to_mean", "objective")
    }
    return {**overall, "per_label": {str(label): row for label, row in sorted(rows.items())}}
