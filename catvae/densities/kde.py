"""``kde``: a Gaussian kernel density per class on the class's training codes (config ``conf/latent/kde.yaml``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Self

import torch

from catvae.densities.base import ClassDensity, expect, integer_option, list_option, members, number_option, tensors, uniform

KDE_SCORED, KDE_REFERENCE = 300, 1500  # codes per class that score the KDE's bandwidths (KernelDensity.fit)


class KernelDensity(ClassDensity):
    """(1/N_y) Σ_j N(c_{y,j}, diag h_y²) per class: the class's training codes (``codes`` N×D sorted
    by class, ``offsets`` L+1 where class y's codes start and end) and a bandwidth h_y = b_y σ_y
    (``bandwidth`` L×D), b_y chosen by held-out log-likelihood (:meth:`fit`).

    Draw: j uniform among the class's codes (from the generator, after the noise), z = c_{y,j} + θ ⊙ h_y ⊙ ε̄.

    Fit options: ``bandwidths``, the multiples b of σ_y tried; ``holdout``, the share of a class's
    codes held out to score them; ``seed``, which codes are held out.
    """

    name = "kde"
    codes: torch.Tensor
    offsets: torch.Tensor
    bandwidth: torch.Tensor
    multiples: list[float] | None = None  # each class's chosen b (after :meth:`fit`)

    def __init__(
        self, bandwidths: Sequence[float] = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0), holdout: float = 0.2, seed: int = 0
    ) -> None:
        tried = list_option("bandwidths", bandwidths, "numbers > 0")
        self.candidates = tuple(number_option(f"bandwidths.{index}", b, 0, above=True) for index, b in enumerate(tried))
        self.holdout = number_option("holdout", holdout, 0, above=True, below=1)
        self.seed = integer_option("seed", seed, 0)

    @property
    def mean(self) -> torch.Tensor:
        return torch.stack([self.codes[int(a) : int(b)].mean(0) for a, b in zip(self.offsets[:-1], self.offsets[1:])])

    @property
    def num_classes(self) -> int:
        return int(self.bandwidth.shape[0])

    @property
    def latent_dim(self) -> int:
        return int(self.bandwidth.shape[1])

    def fit(self, codes: torch.Tensor, labels: torch.Tensor, num_classes: int) -> Self:
        """The KDE with, per class, the multiple b of σ_y (from ``bandwidths``) that maximises the mean
        log-likelihood of a held-out share ``holdout`` of the class's codes under a KDE of the rest.

        Held-out likelihood rather than Scott's or Silverman's rule: those assume a unimodal,
        Gaussian-shaped class and in D = 20 give b ≈ N^(-1/(D+4)) ≈ 0.7 — nearly the class's own
        spread, which smooths away the structure a KDE is for. The likelihood is scored on at most
        :data:`KDE_SCORED` held-out codes under a KDE of at most :data:`KDE_REFERENCE` others; the chosen
        b is then scaled by (N_ref/N)^(1/(D+4)) (Scott's rate) for the KDE on all N codes. Each
        class's b is kept in :attr:`multiples`.
        """
        generator = torch.Generator().manual_seed(self.seed)
        dim = codes.shape[1]
        parts, bandwidths, chosen = [], [], []
        for label in range(num_classes):
            class_codes = members(codes, labels, label, minimum=2).double().cpu()
            sigma = class_codes.std(0).clamp_min(1e-12)
            order = torch.randperm(len(class_codes), generator=generator)
            held = max(1, min(len(class_codes) - 1, round(self.holdout * len(class_codes))))
            # At most KDE_SCORED held-out codes against KDE_REFERENCE others: the likelihood's
            # mean is estimated well by 300 points, and the cost (N_held × N_ref × multiples) stays
            # ~0.1 s a class at D = 20; the reference's size enters the rescaling below.
            test = (class_codes[order[: min(held, KDE_SCORED)]] / sigma).float()
            train = (class_codes[order[held:][:KDE_REFERENCE]] / sigma).float()
            squared = torch.cdist(test, train).square()  # in units of σ_y (float32: a coarse grid needs no more)
            best, best_ll = self.candidates[0], -math.inf
            for b in self.candidates:
                # log (1/N) Σ_j N(x; c_j, b²σ²): the σ_y determinant is the same for every b, left out
                ll = float((torch.logsumexp(-0.5 * squared / b**2, dim=1) - math.log(len(train)) - dim * math.log(b)).mean())
                if ll > best_ll:
                    best, best_ll = b, ll
            b_all = best * (len(train) / len(class_codes)) ** (1.0 / (dim + 4))
            chosen.append(round(float(b_all), 6))
            parts.append(class_codes)
            bandwidths.append(b_all * sigma)
        self.codes = torch.cat(parts).to(codes.dtype)
        self.offsets = torch.tensor([0] + [len(p) for p in parts]).cumsum(0)
        self.bandwidth = torch.stack(bandwidths).to(codes.dtype)
        self.multiples = chosen
        return self

    def fit_report(self) -> dict[str, Any]:
        return {"bandwidth_multiple": self.multiples} if self.multiples is not None else {}

    def anchors(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Row of ``codes`` for each label: one of the class's codes, uniformly."""
        start, count = self.offsets[labels], self.offsets[labels + 1] - self.offsets[labels]
        index = (uniform(len(labels), labels.device, generator) * count).long()
        return start + torch.minimum(index, count - 1)

    def draw(self, labels: torch.Tensor, noise: torch.Tensor, generator: torch.Generator | None = None):
        return self.codes[self.anchors(labels, generator)], self.bandwidth[labels] * noise

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"codes": self.codes.cpu(), "offsets": self.offsets.cpu(), "bandwidth": self.bandwidth.cpu()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor], num_classes: int, latent_dim: int) -> Self:
        codes, offsets, bandwidth = tensors(state, ("codes", "offsets", "bandwidth"))
        L, D = num_classes, latent_dim
        ok = codes.dim() == 2 and codes.shape[1] == D and bandwidth.shape == (L, D) and offsets.shape == (L + 1,)
        ok = ok and not offsets.is_floating_point() and int(offsets[0]) == 0 and int(offsets[-1]) == len(codes)
        expect(ok and bool((offsets.diff() >= 1).all()), "does not fit together", L, D)
        self.codes, self.offsets, self.bandwidth = codes.float(), offsets.long(), bandwidth.float()
        return self
