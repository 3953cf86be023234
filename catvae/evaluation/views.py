"""Pictures of the latent space: the encoded test images by class with each class density, and the
decoder's manifold.

At D = 2 the codes are drawn as they are (the paper's §4.2 discussion of ELBO-2 and MMD-2: which
classes overlap, where a class mean falls in another class's region). For D > 2 the same pictures
are drawn in the plane of the test codes' two first principal components (PCA, scikit-learn): a
code z is shown at P(z − c), with P the 2×D matrix of the components and c the codes' mean; a
Gaussian component N(μ, Σ) of a class density is shown as N(P(μ − c), P Σ Pᵀ), which is exactly the
distribution of the projected codes it would draw. The manifold grid decodes the points
c + a·p₁ + b·p₂ of that plane (at D = 2: the plane itself) over the range the codes cover.

A class density is given as Gaussian components: per class (weights K, means K×D, covariances
K×D×D). The paper's diagonal statistics are one component per class with covariance diag(σ_y²)
(:func:`stats_components`); a density with ``gaussian_components()`` (full covariance, mixtures)
plugs in through :func:`class_components`. Everything here is a pure function of arrays that
writes a file; :func:`write_views` is what ``train`` calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, cast

import numpy as np
import torch

from catvae.core.files import atomic_write
from catvae.core.images import save_grid

LATENT_FILE = "latent.png"
MANIFOLD_FILE = "manifold.png"
FIGURE_SIZE = (7.2, 6.0)  # inches, at FIGURE_DPI: latent.png is 864×720 pixels
FIGURE_DPI = 120
MANIFOLD_SIDE = 20  # decoded images per side of the manifold grid
RANGE_PERCENTILES = (1.0, 99.0)  # the manifold spans this range of the codes on each axis (outliers aside)

# Per class: (weights K, means K×D, covariances K×D×D).
Component = tuple[np.ndarray, np.ndarray, np.ndarray]


class Plane(NamedTuple):
    """Where the pictures are drawn: a code z is shown at ``basis @ (z − centre)``; ``explained`` is the
    share of the codes' variance along each axis (None at D = 2, where nothing is projected)."""

    basis: np.ndarray  # 2×D, orthonormal rows
    centre: np.ndarray  # D
    explained: np.ndarray | None

    def project(self, points: np.ndarray) -> np.ndarray:
        """N×D codes → N×2."""
        return (points - self.centre) @ self.basis.T

    def lift(self, coordinates: np.ndarray) -> np.ndarray:
        """N×2 plane coordinates → N×D codes on the plane (the inverse of :meth:`project` there)."""
        return self.centre + coordinates @ self.basis


def latent_plane(codes: np.ndarray) -> Plane:
    """The identity at D = 2; otherwise the plane of the codes' two first principal components."""
    dim = codes.shape[1]
    if dim == 2:
        return Plane(np.eye(2), np.zeros(2), None)
    if dim < 2:
        raise ValueError(f"latent views need codes of at least 2 dimensions, not {dim}")
    from sklearn.decomposition import PCA

    # The D×D covariance's eigenvectors: exact, and 6× faster than an SVD of the N×D codes (10,000 codes, D = 20).
    pca = PCA(n_components=2, svd_solver="covariance_eigh").fit(codes)
    return Plane(pca.components_.astype(np.float64), pca.mean_.astype(np.float64), pca.explained_variance_ratio_)


def project_components(components: Sequence[Component], plane: Plane) -> list[Component]:
    """Each class's Gaussian components in the plane: means P(μ − c), covariances P Σ Pᵀ."""
    basis = plane.basis
    return [
        (weights, plane.project(means), np.einsum("ij,kjl,ml->kim", basis, covariances, basis))
        for weights, means, covariances in components
    ]


def stats_components(mean: torch.Tensor | np.ndarray, std: torch.Tensor | np.ndarray) -> list[Component]:
    """The paper's class statistics (μ_y, σ_y: L×D) as one Gaussian component per class, N(μ_y, diag σ_y²)."""
    means, stds = _numpy(mean), _numpy(std)
    return [(np.ones(1), means[label][None], np.diag(stds[label] ** 2)[None]) for label in range(len(means))]


def class_components(density: Any) -> list[Component]:
    """A class density's Gaussian components: ``density.gaussian_components()`` where it has one
    (per class: weights K, means K×D, covariances K×D×D), else its diagonal ``mean`` and ``std``."""
    if hasattr(density, "gaussian_components"):
        return [tuple(_numpy(part) for part in component) for component in density.gaussian_components()]  # type: ignore[misc]
    return stats_components(density.mean, density.std)


def _numpy(value: torch.Tensor | np.ndarray) -> np.ndarray:
    return value.detach().cpu().double().numpy() if isinstance(value, torch.Tensor) else np.asarray(value, dtype=np.float64)


def ellipse(covariance: np.ndarray, radius: float) -> tuple[float, float, float]:
    """Width, height and angle (degrees) of the ``radius``-σ ellipse of a 2×2 covariance."""
    values, vectors = np.linalg.eigh(covariance)
    values = np.clip(values, 0.0, None)
    angle = float(np.degrees(np.arctan2(vectors[1, 1], vectors[0, 1])))  # the major axis (largest eigenvalue)
    return 2 * radius * float(np.sqrt(values[1])), 2 * radius * float(np.sqrt(values[0])), angle


def plot_latent(
    codes: np.ndarray,
    labels: np.ndarray,
    components: Sequence[Component],
    names: Sequence[str],
    path: Path,
    title: str,
    plane: Plane | None = None,
) -> Path:
    """Scatter of the codes (projected to ``plane``, by default :func:`latent_plane` of the codes) coloured
    by class, each class's components drawn as 1σ and 2σ ellipses (the line's opacity follows the
    component's weight) with its mean as a cross; the legend names the classes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse

    plane = plane or latent_plane(codes)
    points = plane.project(codes)
    shown = project_components(components, plane)
    colours = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    figure, axes = plt.subplots(figsize=FIGURE_SIZE)
    for label, name in enumerate(names):
        colour = colours(label % colours.N)
        members = points[labels == label]
        axes.scatter(members[:, 0], members[:, 1], s=3, alpha=0.35, color=colour, linewidths=0, rasterized=True)
        weights, means, covariances = shown[label]
        top = float(weights.max())
        for weight, mean, covariance in zip(weights, means, covariances):
            opacity = 0.35 + 0.65 * float(weight) / top
            for radius, style in ((1.0, "-"), (2.0, "--")):
                width, height, angle = ellipse(covariance, radius)
                axes.add_patch(
                    Ellipse(
                        (float(mean[0]), float(mean[1])), width, height, angle=angle, fill=False,
                        edgecolor=colour, linestyle=style, linewidth=1.2, alpha=opacity,
                    )
                )  # fmt: skip
        axes.scatter(means[:, 0], means[:, 1], marker="x", s=40, color=colour, linewidths=1.5)
        axes.plot([], [], marker="o", linestyle="", color=colour, label=name)  # a legend entry of full opacity
    if plane.explained is None:
        axes.set_xlabel("z₁")
        axes.set_ylabel("z₂")
    else:
        axes.set_xlabel(f"principal component 1 ({100 * plane.explained[0]:.0f} % of the variance)")
        axes.set_ylabel(f"principal component 2 ({100 * plane.explained[1]:.0f} % of the variance)")
    low, high = np.percentile(points, [0.5, 99.5], axis=0)
    margin = 0.1 * (high - low)
    axes.set_xlim(low[0] - margin[0], high[0] + margin[0])
    axes.set_ylim(low[1] - margin[1], high[1] + margin[1])
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, title="class (ellipses 1σ, 2σ)", title_fontsize=8)
    figure.tight_layout()
    with atomic_write(path, binary=True) as handle:
        figure.savefig(cast(BinaryIO, handle), dpi=FIGURE_DPI, format=path.suffix.lstrip(".") or "png")
    plt.close(figure)
    return path


def manifold_codes(codes: np.ndarray, plane: Plane, side: int = MANIFOLD_SIDE) -> np.ndarray:
    """``side``² codes on a regular grid of the plane over the codes' 1st–99th percentiles on each
    axis, row-major from the top left: rows go down the plane's second axis, columns along its first."""
    low, high = np.percentile(plane.project(codes), RANGE_PERCENTILES, axis=0)
    across = np.linspace(low[0], high[0], side)
    down = np.linspace(high[1], low[1], side)
    grid = np.stack(np.meshgrid(across, down), axis=-1).reshape(-1, 2)
    return plane.lift(grid)


def plot_manifold(
    decode: Callable[[torch.Tensor], torch.Tensor], codes: np.ndarray, path: Path, plane: Plane | None = None,
    side: int = MANIFOLD_SIDE, image_shape: Sequence[int] = (),
) -> Path:  # fmt: skip
    """The decoded images of :func:`manifold_codes` as a ``side``×``side`` grid (``decode``: N×D codes →
    N flat images of ``image_shape``, C×H×W, in [0, 1])."""
    plane = plane or latent_plane(codes)
    grid = torch.from_numpy(manifold_codes(codes, plane, side)).float()
    with torch.no_grad():
        images = decode(grid).float().cpu()
    return save_grid(images, path, columns=side, image_shape=image_shape, scale=1)


def write_views(
    codes: torch.Tensor,
    labels: torch.Tensor,
    density: Any,
    names: Sequence[str],
    decoder: Any,
    folder: Path,
    title: str,
) -> dict[str, Path]:
    """``latent.png`` and ``manifold.png`` in ``folder`` from the encoded test images (``codes`` N×D,
    ``labels`` N), the class ``density`` (see :func:`class_components`) and the ``decoder``; a
    conditional decoder (``decoder.conditional``) has no single manifold, so only ``latent.png`` is written."""
    points = codes.detach().cpu().double().numpy()
    plane = latent_plane(points)
    where = "" if plane.explained is None else " (PCA plane)"
    written = {
        LATENT_FILE: plot_latent(
            points, labels.cpu().numpy(), class_components(density), names, folder / LATENT_FILE, f"{title}{where}", plane
        )
    }
    if not getattr(decoder, "conditional", False):
        device = next(decoder.parameters()).device

        def decode(z: torch.Tensor) -> torch.Tensor:
            return decoder.images(z.to(device))

        written[MANIFOLD_FILE] = plot_manifold(decode, points, folder / MANIFOLD_FILE, plane, image_shape=decoder.image_shape)
    return written
