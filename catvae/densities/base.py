"""Class latent densities: what the generators of §3.5 draw a class's codes from.

The paper (§3.5.1, eq. 3) fits one diagonal Gaussian per class, N(μ_y, diag σ_y²). Beyond it:

- ``diag``  (the paper, :class:`~catvae.densities.diag.ClassLatentStats`): z = μ_y + θ ⊙ σ_y ⊙ ε̄;
- ``full``  (:class:`FullGaussian`): one full-covariance Gaussian N(μ_y, Σ_y = L_y L_yᵀ) per class,
  z = μ_y + θ ⊙ L_y ε̄;
- ``gmm``   (:class:`GaussianMixture`): a mixture Σ_k w_{y,k} N(μ_{y,k}, Σ_{y,k}) per class (scikit-learn's
  ``GaussianMixture``, full covariances, components chosen by BIC, Schwarz 1978), k ~ w_y, then
  z = μ_{y,k} + θ ⊙ L_{y,k} ε̄: θ scales each component's spread around its own mean;
- ``kde``   (:class:`KernelDensity`): the class's training codes c_{y,j} plus Gaussian noise of a
  per-class bandwidth h_y (a D-vector, h_y = b_y σ_y), j uniform, z = c_{y,j} + θ ⊙ h_y ⊙ ε̄:
  θ multiplies the bandwidth;
- ``prior`` (:class:`Prior`): N(0, I) for every class (what a conditional VAE samples from),
  z = θ ⊙ ε̄.

ε̄ is the mean of n standard normal draws (eq. 3's average), so θ = 1, n = 1 draws from the
fitted density itself, and θ_eff = θ/√n sets the spread as for the paper's generator.

Every density answers :meth:`ClassDensity.draw` ``(labels, noise, generator) -> (centre, spread)``;
:func:`sample_codes` makes the code ``centre + θ[label] ⊙ spread``, which is differentiable in θ.
All are fitted by ``catvae.train`` on the encoder means of the training split (:func:`fit_densities`)
and published in ``densities.pt`` (the diagonal one also in ``stats.pt``, as before).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch

from catvae.core import artifact_format
from catvae.core.errors import DataError
from catvae.densities.diag import ClassLatentStats

DENSITY_NAMES = ("diag", "full", "gmm", "kde", "prior")
FITTED = ("full", "gmm", "kde")  # what densities.pt holds; diag is stats.pt, prior has no parameters
DENSITIES_KIND = "densities"
KDE_SCORED, KDE_REFERENCE = 300, 1500  # codes per class that score the KDE's bandwidths (KernelDensity.fit)

# Per class: mixture weights (K), means (K×D), covariances (K×D×D), for drawing ellipses.
Components = list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


@runtime_checkable
class ClassDensity(Protocol):
    """What a generator needs of a class density (interface 2 of issue 8)."""

    name: ClassVar[str]

    @property
    def mean(self) -> torch.Tensor: ...  # L×D class means

    @property
    def num_classes(self) -> int: ...

    @property
    def latent_dim(self) -> int: ...

    def to(self, device: torch.device | str) -> ClassDensity: ...

    def draw(
        self, labels: torch.Tensor, noise: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def gaussian_components(self) -> Components | None: ...


def sample_codes(
    density: ClassDensity, theta_full: torch.Tensor, n: int, labels: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """K codes z = centre + θ[label] ⊙ spread for the K ``labels`` (eq. 3 generalised), on the density's device.

    ``theta_full`` is L×D (a leaf with ``requires_grad`` gives gradients through the codes). The
    n×K×D standard normal draws come first from ``generator``, on the CPU and moved in one copy
    (so a seed gives the same codes on every device, and the diagonal density draws what the
    paper's Simple always drew); a density's own choices (mixture component, KDE anchor) come after.
    """
    device = density.mean.device
    labels = labels.to(device)
    draws = torch.randn((n, len(labels), density.latent_dim), generator=generator, dtype=density.mean.dtype)
    noise = draws.to(device).mean(dim=0)
    centre, spread = density.draw(labels, noise, generator)
    return centre + theta_full.to(device=device, dtype=spread.dtype)[labels] * spread


def _uniform(count: int, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    """``count`` uniforms in [0, 1) from ``generator`` (CPU, float64), moved to ``device``."""
    return torch.rand(count, generator=generator, dtype=torch.float64).to(device)


def _members(codes: torch.Tensor, labels: torch.Tensor, label: int, minimum: int = 2) -> torch.Tensor:
    members = codes[labels == label]
    if len(members) < minimum:
        raise DataError(f"class {label} has {len(members)} encoded training images; need at least {minimum}")
    return members


def _cholesky(covariance: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factor of a (batch of) covariance(s); a near-singular one gets a small ridge
    (1e-6 of its mean variance, then ×10) so that collapsed latent dimensions do not stop fitting."""
    eye = torch.eye(covariance.shape[-1], dtype=covariance.dtype, device=covariance.device)
    scale = covariance.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(1e-12)[..., None, None]
    for jitter in (0.0, 1e-6, 1e-5, 1e-4, 1e-3):
        factor, info = torch.linalg.cholesky_ex(covariance + jitter * scale * eye)
        if not bool(info.any()):
            return factor
    raise DataError("a class covariance is not positive definite even with a ridge (collapsed codes?)")


# ------------------------------------------------------------------------------------------- full


@dataclass
class FullGaussian:
    """N(μ_y, Σ_y) per class with Σ_y the (unbiased) covariance of the class's codes; ``chol`` is L_y (L×D×D).

    Draw: z = μ_y + θ ⊙ (L_y ε̄), so Cov z = diag(θ) Σ_y diag(θ) / n.
    """

    class_mean: torch.Tensor
    chol: torch.Tensor
    name: ClassVar[str] = "full"

    @property
    def mean(self) -> torch.Tensor:
        return self.class_mean

    @property
    def num_classes(self) -> int:
        return self.class_mean.shape[0]

    @property
    def latent_dim(self) -> int:
        return self.class_mean.shape[1]

    @classmethod
    def fit(cls, codes: torch.Tensor, labels: torch.Tensor, num_classes: int) -> FullGaussian:
        means, covariances = [], []
        for label in range(num_classes):
            members = _members(codes, labels, label, minimum=2).double()
            means.append(members.mean(0))
            covariances.append(torch.cov(members.T).reshape(codes.shape[1], codes.shape[1]))
        chol = _cholesky(torch.stack(covariances))
        return cls(torch.stack(means).to(codes.dtype), chol.to(codes.dtype))

    def to(self, device: torch.device | str) -> FullGaussian:
        return FullGaussian(self.class_mean.to(device), self.chol.to(device))

    def draw(self, labels: torch.Tensor, noise: torch.Tensor, generator: torch.Generator | None = None):
        return self.class_mean[labels], torch.einsum("kij,kj->ki", self.chol[labels], noise)

    def gaussian_components(self) -> Components:
        covariances = self.chol @ self.chol.transpose(-1, -2)
        ones = torch.ones(1, dtype=self.class_mean.dtype, device=self.class_mean.device)
        return [(ones, self.class_mean[y, None], covariances[y, None]) for y in range(self.num_classes)]

    def state(self) -> dict[str, torch.Tensor]:
        return {"mean": self.class_mean.cpu(), "chol": self.chol.cpu()}


# -------------------------------------------------------------------------------------------- gmm


@dataclass
class GaussianMixture:
    """Σ_k w_{y,k} N(μ_{y,k}, L_{y,k} L_{y,k}ᵀ) per class, padded to K = max components
    (``weights`` L×K, zero for the padding; ``means`` L×K×D; ``chol`` L×K×D×D).

    Draw: k ~ Categorical(w_y) from the generator (after the noise), z = μ_{y,k} + θ ⊙ (L_{y,k} ε̄).
    ``mean`` is the mixture's mean Σ_k w_{y,k} μ_{y,k}.
    """

    weights: torch.Tensor
    means: torch.Tensor
    chol: torch.Tensor
    name: ClassVar[str] = "gmm"

    @property
    def mean(self) -> torch.Tensor:
        return (self.weights[..., None] * self.means).sum(1)

    @property
    def num_classes(self) -> int:
        return self.means.shape[0]

    @property
    def latent_dim(self) -> int:
        return self.means.shape[2]

    @property
    def components(self) -> list[int]:
        """Number of components of each class."""
        return [int(c) for c in (self.weights > 0).sum(1).tolist()]

    @classmethod
    def fit(
        cls,
        codes: torch.Tensor,
        labels: torch.Tensor,
        num_classes: int,
        candidates: Sequence[int],
        seed: int,
        max_iter: int = 100,
        reg_covar: float = 1e-6,
    ) -> GaussianMixture:
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
                members = _members(codes, labels, label).double().cpu().numpy()
                best, best_bic = None, math.inf
                for k in sorted({c for c in candidates if c <= len(members)} or {1}):
                    mixture = SkMixture(
                        k,
                        covariance_type="full",
                        max_iter=max_iter,
                        n_init=1,
                        reg_covar=reg_covar,
                        init_params="k-means++",  # k-means++ seeds, no Lloyd iterations: EM refines them anyway
                        random_state=seed,
                    )
                    with warnings.catch_warnings():  # a capped EM is still a usable mixture; BIC judges it
                        warnings.simplefilter("ignore", ConvergenceWarning)
                        mixture.fit(members)
                    bic = mixture.bic(members) if len(candidates) > 1 else 0.0
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
        return cls(weights.to(dtype), means.to(dtype), _cholesky(covariances).to(dtype))

    def to(self, device: torch.device | str) -> GaussianMixture:
        return GaussianMixture(self.weights.to(device), self.means.to(device), self.chol.to(device))

    def pick(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A component per label, k ~ Categorical(w_y), by inverting the weights' CDF at a uniform."""
        cdf = self.weights[labels].double().cumsum(1)
        u = _uniform(len(labels), labels.device, generator)[:, None] * cdf[:, -1:]
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

    def state(self) -> dict[str, torch.Tensor]:
        return {"weights": self.weights.cpu(), "means": self.means.cpu(), "chol": self.chol.cpu()}


# -------------------------------------------------------------------------------------------- kde


@dataclass
class KernelDensity:
    """(1/N_y) Σ_j N(c_{y,j}, diag h_y²) per class: the class's training codes (``codes`` N×D sorted
    by class, ``offsets`` L+1 where class y's codes start and end) and a bandwidth h_y = b_y σ_y
    (``bandwidth`` L×D), b_y chosen by held-out log-likelihood (:meth:`fit`).

    Draw: j uniform among the class's codes (from the generator, after the noise), z = c_{y,j} + θ ⊙ h_y ⊙ ε̄.
    """

    codes: torch.Tensor
    offsets: torch.Tensor
    bandwidth: torch.Tensor
    name: ClassVar[str] = "kde"

    @property
    def mean(self) -> torch.Tensor:
        return torch.stack([self.codes[int(a) : int(b)].mean(0) for a, b in zip(self.offsets[:-1], self.offsets[1:])])

    @property
    def num_classes(self) -> int:
        return self.bandwidth.shape[0]

    @property
    def latent_dim(self) -> int:
        return self.bandwidth.shape[1]

    @classmethod
    def fit(
        cls,
        codes: torch.Tensor,
        labels: torch.Tensor,
        num_classes: int,
        multiples: Sequence[float],
        holdout: float,
        seed: int,
    ) -> tuple[KernelDensity, list[float]]:
        """The KDE with, per class, the multiple b of σ_y (from ``multiples``) that maximises the mean
        log-likelihood of a held-out share ``holdout`` of the class's codes under a KDE of the rest.

        Held-out likelihood rather than Scott's or Silverman's rule: those assume a unimodal,
        Gaussian-shaped class and in D = 20 give b ≈ N^(-1/(D+4)) ≈ 0.7 — nearly the class's own
        spread, which smooths away the structure a KDE is for. The likelihood is scored on at most
        :data:`KDE_SCORED` held-out codes under a KDE of at most :data:`KDE_REFERENCE` others; the chosen
        b is then scaled by (N_ref/N)^(1/(D+4)) (Scott's rate) for the KDE on all N codes. Returns the
        KDE and each class's b.
        """
        if not multiples:
            raise ValueError("multiples must not be empty")
        generator = torch.Generator().manual_seed(seed)
        dim = codes.shape[1]
        parts, bandwidths, chosen = [], [], []
        for label in range(num_classes):
            members = _members(codes, labels, label, minimum=2).double().cpu()
            sigma = members.std(0).clamp_min(1e-12)
            order = torch.randperm(len(members), generator=generator)
            held = max(1, min(len(members) - 1, round(holdout * len(members))))
            # At most KDE_SCORED held-out codes against KDE_REFERENCE others: the likelihood's
            # mean is estimated well by 300 points, and the cost (N_held × N_ref × multiples) stays
            # ~0.1 s a class at D = 20; the reference's size enters the rescaling below.
            test = (members[order[: min(held, KDE_SCORED)]] / sigma).float()
            train = (members[order[held:][:KDE_REFERENCE]] / sigma).float()
            squared = torch.cdist(test, train).square()  # in units of σ_y (float32: a coarse grid needs no more)
            best, best_ll = multiples[0], -math.inf
            for b in multiples:
                # log (1/N) Σ_j N(x; c_j, b²σ²): the σ_y determinant is the same for every b, left out
                ll = float((torch.logsumexp(-0.5 * squared / b**2, dim=1) - math.log(len(train)) - dim * math.log(b)).mean())
                if ll > best_ll:
                    best, best_ll = b, ll
            b_all = best * (len(train) / len(members)) ** (1.0 / (dim + 4))
            chosen.append(round(float(b_all), 6))
            parts.append(members)
            bandwidths.append(b_all * sigma)
        offsets = torch.tensor([0] + [len(p) for p in parts]).cumsum(0)
        return cls(torch.cat(parts).to(codes.dtype), offsets, torch.stack(bandwidths).to(codes.dtype)), chosen

    def to(self, device: torch.device | str) -> KernelDensity:
        return KernelDensity(self.codes.to(device), self.offsets.to(device), self.bandwidth.to(device))

    def anchors(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Row of ``codes`` for each label: one of the class's codes, uniformly."""
        start, count = self.offsets[labels], self.offsets[labels + 1] - self.offsets[labels]
        index = (_uniform(len(labels), labels.device, generator) * count).long()
        return start + torch.minimum(index, count - 1)

    def draw(self, labels: torch.Tensor, noise: torch.Tensor, generator: torch.Generator | None = None):
        return self.codes[self.anchors(labels, generator)], self.bandwidth[labels] * noise

    def gaussian_components(self) -> None:
        return None  # thousands of kernels per class: nothing worth drawing as ellipses

    def state(self) -> dict[str, torch.Tensor]:
        return {"codes": self.codes.cpu(), "offsets": self.offsets.cpu(), "bandwidth": self.bandwidth.cpu()}


# ------------------------------------------------------------------------------------------ prior


@dataclass
class Prior:
    """N(0, I) for every class, the VAE's prior: z = θ ⊙ ε̄ (centre 0, spread 1). Labels change nothing."""

    num_classes: int
    latent_dim: int
    device: torch.device | str = "cpu"
    name: ClassVar[str] = "prior"

    @property
    def mean(self) -> torch.Tensor:
        return torch.zeros(self.num_classes, self.latent_dim, device=self.device)

    def to(self, device: torch.device | str) -> Prior:
        return Prior(self.num_classes, self.latent_dim, device)

    def draw(self, labels: torch.Tensor, noise: torch.Tensor, generator: torch.Generator | None = None):
        return torch.zeros_like(noise), noise

    def gaussian_components(self) -> None:
        return None


# ------------------------------------------------------------------------ fitting, saving, loading


@dataclass(frozen=True)
class FitOptions:
    """How :func:`fit_densities` fits (``densities.*`` in train's config)."""

    gmm_components: tuple[int, ...] = (1, 4, 16)
    gmm_max_iter: int = 100
    gmm_reg_covar: float = 1e-6
    kde_bandwidths: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
    kde_holdout: float = 0.2
    seed: int = 0

    @classmethod
    def from_config(cls, node: Any, seed: int) -> FitOptions:
        """From ``cfg.densities`` (keys ``gmm.components``, ``gmm.max_iter``, ``gmm.reg_covar``,
        ``kde.bandwidths``, ``kde.holdout``) and the run's seed."""
        return cls(
            tuple(int(c) for c in node.gmm.components),
            int(node.gmm.max_iter),
            float(node.gmm.reg_covar),
            tuple(float(b) for b in node.kde.bandwidths),
            float(node.kde.holdout),
            int(seed),
        )


def fit_densities(
    codes: torch.Tensor, labels: torch.Tensor, num_classes: int, options: FitOptions
) -> tuple[dict[str, ClassDensity], dict[str, Any]]:
    """Every density of :data:`DENSITY_NAMES` fitted on the N×D ``codes`` (on the CPU) and a report:
    seconds per density, the GMM's components per class and the KDE's bandwidth multiples."""
    codes, labels = codes.detach().float().cpu(), labels.cpu()
    seconds: dict[str, float] = {}

    def timed(name: str, fit):
        started = time.perf_counter()
        out = fit()
        seconds[name] = round(time.perf_counter() - started, 3)
        return out

    diag = timed("diag", lambda: ClassLatentStats.fit(codes, labels, num_classes))
    full = timed("full", lambda: FullGaussian.fit(codes, labels, num_classes))
    gmm = timed(
        "gmm",
        lambda: GaussianMixture.fit(
            codes, labels, num_classes, options.gmm_components, options.seed, options.gmm_max_iter, options.gmm_reg_covar
        ),
    )
    kde, multiples = timed(
        "kde", lambda: KernelDensity.fit(codes, labels, num_classes, options.kde_bandwidths, options.kde_holdout, options.seed)
    )
    densities: dict[str, ClassDensity] = {
        "diag": diag,
        "full": full,
        "gmm": gmm,
        "kde": kde,
        "prior": Prior(num_classes, codes.shape[1]),
    }
    report = {
        "fit_seconds": seconds,
        "gmm_components": gmm.components,
        "kde_bandwidth_multiple": multiples,
    }
    return densities, report


def save_densities(densities: dict[str, ClassDensity], path: Path, options: FitOptions | None = None) -> None:
    """The fitted densities (full, gmm, kde) in one stamped file, ``kind`` "densities"."""
    payload: dict[str, Any] = {name: densities[name].state() for name in FITTED}  # type: ignore[attr-defined]
    if options is not None:
        payload["options"] = {
            "gmm_components": list(options.gmm_components),
            "gmm_max_iter": options.gmm_max_iter,
            "gmm_reg_covar": options.gmm_reg_covar,
            "kde_bandwidths": list(options.kde_bandwidths),
            "kde_holdout": options.kde_holdout,
            "seed": options.seed,
        }
    torch.save(artifact_format.stamp(DENSITIES_KIND, payload), path)


def _tensors(path: Path, state: Any, part: str, names: tuple[str, ...], remake: str | None) -> list[torch.Tensor]:
    if not isinstance(state, dict) or not all(isinstance(state.get(n), torch.Tensor) for n in names):
        raise artifact_format.broken(path, f"its {part} density lacks tensors {', '.join(names)}", remake)
    tensors = [state[n] for n in names]
    if not all(bool(torch.isfinite(t.float()).all()) for t in tensors):
        raise artifact_format.broken(path, f"its {part} density holds NaN or infinite values", remake)
    return tensors


def load_densities(path: str | Path, stats: ClassLatentStats, remake: str | None = None) -> dict[str, ClassDensity]:
    """Every density: ``diag`` is ``stats`` (stats.pt), ``prior`` is built for its shape, the others
    come from ``path`` (written by :func:`save_densities`). A corrupt, foreign or inconsistent file
    is an :class:`~catvae.core.errors.ArtifactError` naming it and ``remake``."""
    path = Path(path)
    state = artifact_format.read(path, DENSITIES_KIND, remake)
    L, D = stats.num_classes, stats.latent_dim

    def check(ok: bool, part: str, what: str) -> None:
        if not ok:
            raise artifact_format.broken(path, f"its {part} density {what} (expected {L} classes × {D} dimensions)", remake)

    mean, chol = _tensors(path, state.get("full"), "full", ("mean", "chol"), remake)
    check(mean.shape == (L, D) and chol.shape == (L, D, D), "full", f"has shapes {tuple(mean.shape)}, {tuple(chol.shape)}")
    full = FullGaussian(mean.float(), chol.float())
    weights, means, gchol = _tensors(path, state.get("gmm"), "gmm", ("weights", "means", "chol"), remake)
    k = weights.shape[-1] if weights.dim() == 2 else -1
    check(
        weights.shape == (L, k) and means.shape == (L, k, D) and gchol.shape == (L, k, D, D) and k >= 1,
        "gmm",
        f"has shapes {tuple(weights.shape)}, {tuple(means.shape)}, {tuple(gchol.shape)}",
    )
    check(bool((weights >= 0).all()) and bool((weights[:, 0] > 0).all()), "gmm", "has negative or empty weights")
    gmm = GaussianMixture(weights.float(), means.float(), gchol.float())
    codes, offsets, bandwidth = _tensors(path, state.get("kde"), "kde", ("codes", "offsets", "bandwidth"), remake)
    ok = codes.dim() == 2 and codes.shape[1] == D and bandwidth.shape == (L, D) and offsets.shape == (L + 1,)
    ok = ok and not offsets.is_floating_point() and int(offsets[0]) == 0 and int(offsets[-1]) == len(codes)
    check(ok and bool((offsets.diff() >= 1).all()), "kde", "does not fit together")
    kde = KernelDensity(codes.float(), offsets.long(), bandwidth.float())
    return {"diag": stats, "full": full, "gmm": gmm, "kde": kde, "prior": Prior(L, D)}
