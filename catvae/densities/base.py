"""Class latent densities: what the generators of §3.5 draw a class's codes from.

The paper (§3.5.1, eq. 3) fits one diagonal Gaussian per class, N(μ_y, diag σ_y²). Beyond it, one
class per module, each named by its YAML in ``conf/latent/``:

- ``diag``  (the paper, :class:`~catvae.densities.diag.ClassLatentStats`): z = μ_y + θ ⊙ σ_y ⊙ ε̄;
- ``full``  (:class:`~catvae.densities.full.FullGaussian`): one full-covariance Gaussian
  N(μ_y, Σ_y = L_y L_yᵀ) per class, z = μ_y + θ ⊙ L_y ε̄;
- ``gmm``   (:class:`~catvae.densities.gmm.GaussianMixture`): a mixture Σ_k w_{y,k} N(μ_{y,k}, Σ_{y,k}) per
  class (scikit-learn's ``GaussianMixture``, full covariances, components chosen by BIC, Schwarz 1978),
  k ~ w_y, then z = μ_{y,k} + θ ⊙ L_{y,k} ε̄: θ scales each component's spread around its own mean;
- ``kde``   (:class:`~catvae.densities.kde.KernelDensity`): the class's training codes c_{y,j} plus
  Gaussian noise of a per-class bandwidth h_y (a D-vector, h_y = b_y σ_y), j uniform,
  z = c_{y,j} + θ ⊙ h_y ⊙ ε̄: θ multiplies the bandwidth;
- ``prior`` (:class:`~catvae.densities.prior.Prior`): N(0, I) for every class (what a conditional VAE
  samples from), z = θ ⊙ ε̄.

ε̄ is the mean of n standard normal draws (eq. 3's average), so θ = 1, n = 1 draws from the
fitted density itself, and θ_eff = θ/√n sets the spread as for the paper's generator.

Every density is a :class:`ClassDensity`: built from its config node (``_target_`` and its fit
options as constructor arguments, :func:`build_density`), fitted on the encoder means of the
training split (:meth:`~ClassDensity.fit`), drawn through :meth:`~ClassDensity.draw`
``(labels, noise, generator) -> (centre, spread)`` (:func:`sample_codes` makes the code
``centre + θ[label] ⊙ spread``, differentiable in θ) and saved as its tensors
(:meth:`~ClassDensity.state_dict`). ``catvae.train`` fits every node of ``densities`` in its config
(:func:`fit_densities`) and publishes them in ``densities.pt`` (:func:`save_densities`), each entry
its state beside the resolved node that rebuilds it, so that a file names what it holds and a
density added later leaves earlier files readable (:func:`load_densities`; the diagonal one is also
in ``stats.pt``, as before).
"""

from __future__ import annotations

import copy
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import torch

from catvae.core import artifact_format
from catvae.core.errors import ArgumentError, ArtifactError, DataError
from catvae.core.targets import instantiate

DENSITIES_KIND = "densities"

# Per class: mixture weights (K), means (K×D), covariances (K×D×D), for drawing ellipses.
Components = list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


class ClassDensity(ABC):
    """A density p(z | y) per class y of the latent space (interface 2 of issue 8), what a generator draws from.

    To add one (``docs/extending.md``): subclass this in a module of your own, take the fit options
    as keyword arguments of the constructor (check them there, raising :class:`ArgumentError` naming
    the argument: validation turns it into the config key), implement :meth:`fit`, :attr:`mean`,
    :meth:`draw`, :meth:`state_dict` and :meth:`load_state_dict`, and write a YAML naming the class
    as ``_target_`` with its options beside ``name``. Nothing else: train fits it when its node is among
    ``densities`` (``+latent@densities.NAME=NAME``), ``densities.pt`` stores it with its node, and a
    search or generate draws from it with ``latent=NAME``.
    """

    name: str = "density"  # its key in ``densities`` and ``latent.name``
    config: dict[str, Any] | None = None  # the resolved node that built it (:func:`build_density`), saved with it

    @abstractmethod
    def fit(self, codes: torch.Tensor, labels: torch.Tensor, num_classes: int) -> Self:
        """Fit on the N×D ``codes`` of ``labels`` in 0..``num_classes``-1 (the encoder means of the
        training split, on the CPU); returns this density."""

    if TYPE_CHECKING:  # a plain attribute (diag, full, prior) or a property (gmm, kde) of the subclass

        @property
        def mean(self) -> torch.Tensor:
            """L×D: each class's mean (the code a generator draws at θ = 0 for the Gaussians)."""
            ...

    @property
    def num_classes(self) -> int:
        return int(self.mean.shape[0])

    @property
    def latent_dim(self) -> int:
        return int(self.mean.shape[1])

    @abstractmethod
    def draw(
        self, labels: torch.Tensor, noise: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Centre and spread (both K×D) for the K ``labels`` given ε̄ (``noise``, K×D); a code is
        ``centre + θ[label] ⊙ spread``. The density's own random choices come from ``generator``."""

    @abstractmethod
    def state_dict(self) -> dict[str, torch.Tensor]:
        """The fitted parameters, on the CPU (what ``densities.pt`` stores)."""

    @abstractmethod
    def load_state_dict(self, state: Mapping[str, torch.Tensor], num_classes: int, latent_dim: int) -> Self:
        """Take the parameters of :meth:`state_dict` for ``num_classes`` × ``latent_dim``; a state that
        does not fit raises ``ValueError`` saying what is wrong (the loader names the file)."""

    def gaussian_components(self) -> Components | None:
        """Per class its Gaussian components (weights, means, covariances) for the latent views'
        ellipses, or None where there is nothing worth drawing."""
        return None

    def fit_report(self) -> dict[str, Any]:
        """What the fit chose, for train's summary (under ``densities``, each key prefixed with the name)."""
        return {}

    def to(self, device: torch.device | str) -> Self:
        """A copy with every tensor attribute on ``device``."""
        moved = copy.copy(self)
        for key, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                setattr(moved, key, value.to(device))
        return moved


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


# --------------------------------------------------------------- helpers of the densities' modules


def uniform(count: int, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    """``count`` uniforms in [0, 1) from ``generator`` (CPU, float64), moved to ``device``."""
    return torch.rand(count, generator=generator, dtype=torch.float64).to(device)


def members(codes: torch.Tensor, labels: torch.Tensor, label: int, minimum: int = 2) -> torch.Tensor:
    """The codes of class ``label``; fewer than ``minimum`` is a :class:`DataError`."""
    chosen = codes[labels == label]
    if len(chosen) < minimum:
        raise DataError(f"class {label} has {len(chosen)} encoded training images; need at least {minimum}")
    return chosen


def cholesky(covariance: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factor of a (batch of) covariance(s); a near-singular one gets a small ridge
    (1e-6 of its mean variance, then ×10) so that collapsed latent dimensions do not stop fitting."""
    eye = torch.eye(covariance.shape[-1], dtype=covariance.dtype, device=covariance.device)
    scale = covariance.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(1e-12)[..., None, None]
    for jitter in (0.0, 1e-6, 1e-5, 1e-4, 1e-3):
        factor, info = torch.linalg.cholesky_ex(covariance + jitter * scale * eye)
        if not bool(info.any()):
            return factor
    raise DataError("a class covariance is not positive definite even with a ridge (collapsed codes?)")


def tensors(state: Mapping[str, Any], names: Sequence[str]) -> list[torch.Tensor]:
    """``state``'s tensors ``names``, all finite; else ``ValueError`` (which :meth:`ClassDensity.load_state_dict` raises)."""
    if not isinstance(state, Mapping) or not all(isinstance(state.get(n), torch.Tensor) for n in names):
        raise ValueError(f"lacks tensors {', '.join(names)}")
    found = [state[n] for n in names]
    if not all(bool(torch.isfinite(t.float()).all()) for t in found):
        raise ValueError("holds NaN or infinite values")
    return found


def expect(ok: bool, what: str, num_classes: int, latent_dim: int) -> None:
    """``ValueError`` saying ``what`` is wrong with a state for ``num_classes`` × ``latent_dim`` unless ``ok``."""
    if not ok:
        raise ValueError(f"{what} (expected {num_classes} classes × {latent_dim} dimensions)")


def integer_option(argument: str, value: Any, minimum: int) -> int:
    """A constructor's integer argument, >= ``minimum``; else :class:`ArgumentError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ArgumentError(argument, value, f"an integer >= {minimum}")
    return value


def number_option(argument: str, value: Any, low: float, *, above: bool = False, below: float | None = None) -> float:
    """A constructor's finite number, ``>= low`` (``> low`` with ``above``) and ``< below`` if given;
    else :class:`ArgumentError` (an integer is reported as the float it stands for)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = (
        isinstance(value, float)
        and math.isfinite(value)
        and (value > low if above else value >= low)
        and (below is None or value < below)
    )
    if not ok:
        allowed = f"a number {'>' if above else '>='} {low:g}" + (f" and < {below:g}" if below is not None else "")
        raise ArgumentError(argument, value, allowed)
    return float(value)


def list_option(argument: str, value: Any, what: str) -> list[Any]:
    """A constructor's non-empty list (of ``what``, for the message); else :class:`ArgumentError`."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) == 0:
        shown = list(value) if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) else value
        raise ArgumentError(argument, shown, f"a non-empty list of {what}")
    return list(value)


# ------------------------------------------------------------------------ building, fitting, saving, loading


def build_density(node: Mapping[str, Any], name: str) -> ClassDensity:
    """The unfitted density a config node names: ``_target_`` and its constructor's arguments, beside
    ``name`` (the node's label, not an argument), built by the trusted ``instantiate``. It keeps the
    node it was built from (:attr:`ClassDensity.config`), which :func:`save_densities` stores."""
    arguments = {key: value for key, value in dict(node).items() if key != "name"}
    density = instantiate(arguments, _convert_="all")
    if not isinstance(density, ClassDensity):
        raise TypeError(f"{arguments.get('_target_')} is not a catvae.densities.base.ClassDensity")
    density.name = name
    density.config = arguments
    return density


def fit_densities(
    codes: torch.Tensor, labels: torch.Tensor, num_classes: int, nodes: Mapping[str, Any]
) -> tuple[dict[str, ClassDensity], dict[str, Any]]:
    """Every density of ``nodes`` (name → resolved config node: train's ``densities``) built and fitted on
    the N×D ``codes`` (on the CPU), and a report: the seconds of each density that has parameters to
    fit, and what each fit chose (:meth:`ClassDensity.fit_report`, keys prefixed with its name: the
    GMM's ``gmm_components`` per class, the KDE's ``kde_bandwidth_multiple``)."""
    codes, labels = codes.detach().float().cpu(), labels.cpu()
    densities: dict[str, ClassDensity] = {}
    seconds: dict[str, float] = {}
    chosen: dict[str, Any] = {}
    for name, node in nodes.items():
        started = time.perf_counter()
        density = build_density(node, name).fit(codes, labels, num_classes)
        elapsed = round(time.perf_counter() - started, 3)
        if density.state_dict():  # the prior has nothing to fit
            seconds[name] = elapsed
        chosen.update({f"{name}_{key}": value for key, value in density.fit_report().items()})
        densities[name] = density
    return densities, {"fit_seconds": seconds, **chosen}


def save_densities(densities: Mapping[str, ClassDensity], path: Path) -> None:
    """Every density in one stamped file, ``kind`` "densities": under ``densities``, by name, its
    ``target`` (the resolved node that rebuilds it, :attr:`ClassDensity.config`) and its ``state``."""
    entries: dict[str, Any] = {}
    for name, density in densities.items():
        if density.config is None:
            raise ValueError(f"class density {name!r} was not built from a config node (build_density): nothing rebuilds it")
        entries[name] = {"target": density.config, "state": density.state_dict()}
    torch.save(artifact_format.stamp(DENSITIES_KIND, {DENSITIES_KIND: entries}), path)


# What densities.pt held before each entry carried its node (catvae before issue 15): the states of
# full, gmm and kde at the top level; diag came from stats.pt and the prior had no parameters.
LEGACY_TARGETS = {
    "full": "catvae.densities.full.FullGaussian",
    "gmm": "catvae.densities.gmm.GaussianMixture",
    "kde": "catvae.densities.kde.KernelDensity",
}
LEGACY_PRIOR = "catvae.densities.prior.Prior"


class UnavailableDensity(ClassDensity):
    """An entry of ``densities.pt`` whose class cannot be built in this process (its module is not
    installed or not trusted here). The file's other densities stay usable; asking for this one
    raises the :class:`ArtifactError` that says why (:func:`require`)."""

    def __init__(self, error: ArtifactError) -> None:
        self.error = error

    def _refuse(self) -> Any:
        raise self.error

    def fit(self, codes: torch.Tensor, labels: torch.Tensor, num_classes: int) -> Self:
        return self._refuse()

    @property
    def mean(self) -> torch.Tensor:
        return self._refuse()

    def draw(self, labels: torch.Tensor, noise: torch.Tensor, generator: torch.Generator | None = None):
        return self._refuse()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self._refuse()

    def load_state_dict(self, state: Mapping[str, torch.Tensor], num_classes: int, latent_dim: int) -> Self:
        return self._refuse()

    def to(self, device: torch.device | str) -> Self:
        return self


def require(densities: Mapping[str, ClassDensity], name: str, path: Path | str) -> ClassDensity:
    """The density ``name`` among the ``densities`` loaded from ``path``: one the file lacks, or one
    whose class cannot be built here, is an :class:`ArtifactError` saying which it holds and what to do."""
    if name not in densities:
        raise ArtifactError(
            f"{path} holds no class density {name!r} (it holds {', '.join(densities)}). Train with it among the "
            f"densities: python -m catvae.train (the settings that made these artifacts) +latent@densities.{name}={name}"
        )
    density = densities[name]
    if isinstance(density, UnavailableDensity):
        raise density.error
    return density


def load_densities(path: str | Path, stats: ClassDensity, remake: str | None = None) -> dict[str, ClassDensity]:
    """Every density of ``path`` (written by :func:`save_densities`), each rebuilt from its stored
    node and checked against the shape of ``stats`` (stats.pt's :class:`~catvae.densities.diag.ClassLatentStats`).
    A file of the earlier format (the states of full, gmm and kde at its top level) loads as it did:
    ``diag`` is ``stats`` and ``prior`` is built for its shape. A corrupt, foreign or inconsistent
    file is an :class:`~catvae.core.errors.ArtifactError` naming it and ``remake``; an entry whose
    class cannot be built here loads as an :class:`UnavailableDensity`, refused only when asked for."""
    path = Path(path)
    state = artifact_format.read(path, DENSITIES_KIND, remake)
    L, D = stats.num_classes, stats.latent_dim
    entries = state.get(DENSITIES_KIND)
    loaded: dict[str, ClassDensity] = {}
    if entries is None:  # the earlier format
        loaded["diag"] = stats
        entries = {name: {"target": {"_target_": target}, "state": state.get(name)} for name, target in LEGACY_TARGETS.items()}
        entries["prior"] = {"target": {"_target_": LEGACY_PRIOR}, "state": {}}
    if not isinstance(entries, Mapping):
        raise artifact_format.broken(path, f"its {DENSITIES_KIND} entry is not a mapping of class densities", remake)
    for name, entry in entries.items():
        target = entry.get("target") if isinstance(entry, Mapping) else None
        if not isinstance(target, Mapping) or not isinstance(target.get("_target_"), str):
            raise artifact_format.broken(path, f"its {name} density names no class (_target_) that rebuilds it", remake)
        try:
            density = build_density(target, str(name))
        except Exception as error:  # not importable or not trusted here: the file's other densities stay usable
            loaded[name] = UnavailableDensity(
                ArtifactError(
                    f"{path}: its {name} density is a {target['_target_']}, which cannot be built here "
                    f"({first_line(error.__cause__ or error)}). Install the module that defines it and trust "
                    "its package (extra_trusted_targets or CATVAE_TRUSTED_TARGETS, see catvae.core.targets)"
                )
            )
            continue
        try:
            density.load_state_dict(entry.get("state"), L, D)
        except ValueError as error:
            raise artifact_format.broken(path, f"its {name} density {error}", remake) from None
        loaded[name] = density
    return loaded


def first_line(error: BaseException) -> str:
    """An error's first line of text, or its type's name."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
