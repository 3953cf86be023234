"""``gmm``: a Gaussian mixture per class, components chosen by BIC (config ``conf/latent/gmm.yaml``)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Self

import torch

from catvae.densities.base import (
    ClassDensity,
    Components,
    cholesky,
    expect,
    integer_option,
    list_option,
    members,
    number_option,
    tensors,
    uniform,
)


class GaussianMixture(ClassDensity):
    """Σ_k w_{y,k} N(μ_{y,k}, L_{y,k} L_{y,k}ᵀ) per class, padded to K = max components
    (``weights`` L×K, zero for the padding; ``means`` L×K×D; ``chol`` L×K×D×D).

    Draw: k ~ Categorical(w_y) from the generator (after the noise), z = μ_{y,k} + θ ⊙ (L_{y,k} ε̄).
    ``mean`` is the mixture's mean Σ_k w_{y,k} μ_{y,k}.

    Fit options: ``components``, the candidate numbers of components (the lowest BIC wins; one
    entry fixes the number); ``max_iter``, EM's iterations; ``reg_covar``, added to each
    covariance's diagonal; ``seed``, scikit-learn's ``random_state``.
    """

    name = "gmm"
    weights: torch.Tensor
    means: torch.Tensor
    chol: torch.Tensor

    def __init__(
        self, components: Sequence[int] = (1, 4, 16), max_iter: int = 100, reg_covar: float = 1e-6, seed: int = 0
    ) -> None:
        candidates = list_option("components", components, "integers >= 1")
        self.candidates = tuple(integer_option(f"components.{index}", value, 1) for index, value in enumerate(candidates))
        self.max_iter = integer_option("max_iter", max_iter, 1)
        self.reg_covar = number_option("reg_covar", reg_covar, 0)
        self.seed = integer_option("seed", seed, 0)

    @property
    def mean(self) -> torch.Tensor:
        return (self.weights[..., None] * self.means).sum(1)

    @property
    def num_classes(self) -> int:
        return int(self.means.shape[0])

    @property
    def latent_dim(self) -> int:
        return int(self.means.shape[2])

    @property
    def components(self) -> list[int]:
        """Number of components of each class."""
        return [int(c) for c in (self.weights > 0).sum(1).tolist()]

    def fit(self, codes: torch.Tensor, labels: torch.Tensor, num_classes: int) -> Self:
        """Per class, scikit-learn's GaussianMixture (full covariances, k-means++ start, ``n_init=1``,
        ``random_state=seed``) for each candidate number of components; the lowest BIC wins (one
        candidate: that number). Candidates above a class's size are skipped."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.mixture import GaussianMixture as SkMixture
        from threadpoolctl import threadpool_limits

        fitted = []
        # One BLAS/OpenMP thread: these fits are small, and beside torch's own OpenMP pool the
        # default threads oversubscribe the cores (measured here: 8 components on 5,400×20 codes
        # 16 s with the default pools, 0.9 s with one thread).
        with threadpool_limits(limits=1):
            for label in range(num_classes):
                chosen = members(codes, labels, label).double().cpu().numpy()
                best, best_bic = None, math.inf
                for k in sorted({c for c in self.candidates if c <= len(chosen)} or {1}):
                    mixture = SkMixture(
                        k,
                        covariance_type="full",
                        max_iter=self.max_iter,
                        n_init=1,
                        reg_covar=self.reg_covar,
                        init_params="k-means++",  # k-means++ seeds, no Lloyd iterations: EM refines them anyway
                        random_state=self.seed,
                    )
                    with warnings.catch_warnings():  # a capped EM is still a usable mixture; BIC judges it
                        warnings.simplefilter("ignore", ConvergenceWarning)
                        mixture.fit(chosen)
                    bic = mixture.bic(chosen) if len(self.candidates) > 1 else 0.0
                    if bic < best_bic:
                        best, best_bic = mixture, bic
                assert best is not None
                fitted.append(best)
        width, dim = max(m.n_components for m in fitted), codes.shape[1]
        weights = torch.zeros(num_classes, width, dtype=torch.float64)
        means = torch.zeros(num_classes, width, dim, dtype=torch.float64)
        covariances = torch.eye(dim, dtype=torch.float64).repeat(num_classes, width, 1, 1)
        for label, mixture in enumerate(fitted):
            k = mixture.n_components
            weights[label, :k] = torch.from_numpy(mixture.weights_)
            means[label, :k] = torch.from_numpy(mixture.means_)
            covariances[label, :k] = torch.from_numpy(mixture.covariances_)
        dtype = codes.dtype
        self.weights, self.means, self.chol = weights.to(dtype), means.to(dtype), cholesky(covariances).to(dtype)
        return self

    def fit_report(self) -> dict[str, Any]:
        return {"components": self.components}

    def pick(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A component per label, k ~ Categorical(w_y), by inverting the weights' CDF at a uniform."""
        cdf = self.weights[labels].double().cumsum(1)
        u = uniform(len(labels), labels.device, generator)[:, None] * cdf[:, -1:]
        k = (cdf <= u).sum(1)
        return torch.minimum(k, (self.weights[labels] > 0).sum(1) - 1)

    def draw(self, labels: torch.Tensor, noise: torch.Tensor, generator: torch.Generator | None = None):
        k = self.pick(labels, generator)
        return self.means[labels, k], torch.einsum("kij,kj->ki", self.chol[labels, k], noise)

    def gaussian_components(self) -> Components:
        covariances = self.chol @ self.chol.transpose(-1, -2)
        out = []
        for y, k in enumerate(self.components):
            out.append((self.weights[y, :k], self.means[y, :k], covariances[y, :k]))
        return out

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"weights": self.weights.cpu(), "means": self.means.cpu(), "chol": self.chol.cpu()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor], num_classes: int, latent_dim: int) -> Self:
        weights, means, chol = tensors(state, ("weights", "means", "chol"))
        L, D = num_classes, latent_dim
        k = weights.shape[-1] if weights.dim() == 2 else -1
        expect(
            weights.shape == (L, k) and means.shape == (L, k, D) and chol.shape == (L, k, D, D) and k >= 1,
            f"has shapes {tuple(weights.shape)}, {tuple(means.shape)}, {tuple(chol.shape)}",
            L,
            D,
        )
        expect(bool((weights >= 0).all()) and bool((weights[:, 0] > 0).all()), "has negative or empty weights", L, D)
        self.weights, self.means, self.chol = weights.float(), means.float(), chol.float()
        return self
