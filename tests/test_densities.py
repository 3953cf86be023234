"""Class latent densities (catvae.densities): fitted values, draws, θ's gradient, the file (and its earlier format)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from catvae.config.validate import validate_search, validate_train
from catvae.core import artifact_format
from catvae.core.errors import ArtifactError, ConfigError
from catvae.densities.base import fit_densities, load_densities, require, sample_codes, save_densities
from catvae.densities.diag import ClassLatentStats
from catvae.densities.full import FullGaussian
from catvae.densities.gmm import GaussianMixture
from catvae.densities.kde import KernelDensity
from catvae.densities.prior import Prior
from catvae.generators.gaussian import Medium1, Medium2, Simple, target_labels

DENSITY_NAMES = ("diag", "full", "gmm", "kde", "prior")  # train's default set (conf/train.yaml)
# The nodes of conf/latent with smaller option grids (what train's config hands fit_densities, resolved).
NODES = {
    "diag": {"_target_": "catvae.densities.diag.ClassLatentStats"},
    "full": {"_target_": "catvae.densities.full.FullGaussian"},
    "gmm": {"_target_": "catvae.densities.gmm.GaussianMixture", "components": [1, 2, 3], "max_iter": 100, "reg_covar": 1e-6}
    | {"seed": 0},
    "kde": {"_target_": "catvae.densities.kde.KernelDensity", "bandwidths": [0.05, 0.1, 0.2, 0.5, 1.0], "holdout": 0.2}
    | {"seed": 0},
    "prior": {"_target_": "catvae.densities.prior.Prior"},
}


def two_classes(per_class: int = 400, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 0: a correlated Gaussian at (1, -2, 0.5); class 1: two clusters at x = ±6 (weights 0.75, 0.25)."""
    g = torch.Generator().manual_seed(seed)
    chol = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [-0.5, 0.3, 0.4]])
    first = torch.tensor([1.0, -2.0, 0.5]) + torch.randn(per_class, 3, generator=g) @ chol.T
    left = 3 * per_class // 4
    second = 0.3 * torch.randn(per_class, 3, generator=g)
    second[:left, 0] -= 6
    second[left:, 0] += 6
    return torch.cat([first, second]), torch.tensor([0] * per_class + [1] * per_class)


@pytest.fixture(scope="module")
def fitted():
    codes, labels = two_classes()
    densities, report = fit_densities(codes, labels, 2, NODES)
    return codes, labels, densities, report


def test_full_covariance_recovers_a_known_gaussian():
    g = torch.Generator().manual_seed(1)
    chol = torch.tensor([[2.0, 0.0], [1.5, 0.5]])  # Σ = [[4, 3], [3, 2.5]]
    codes = torch.tensor([3.0, -1.0]) + torch.randn(50_000, 2, generator=g) @ chol.T
    full = FullGaussian().fit(codes, torch.zeros(50_000, dtype=torch.long), 1)
    sigma = full.chol[0] @ full.chol[0].T
    assert full.mean[0].tolist() == pytest.approx([3.0, -1.0], abs=0.03)
    assert sigma.flatten().tolist() == pytest.approx([4.0, 3.0, 3.0, 2.5], rel=0.03)
    # θ = 1, n = 1 draws from N(μ, Σ); θ = 0.5, n = 4 from N(μ, 0.25² Σ).
    labels = torch.zeros(100_000, dtype=torch.long)
    z = sample_codes(full, torch.ones(1, 2), 1, labels, torch.Generator().manual_seed(2))
    assert torch.cov(z.T).flatten().tolist() == pytest.approx([4.0, 3.0, 3.0, 2.5], rel=0.03)
    z = sample_codes(full, torch.full((1, 2), 0.5), 4, labels, torch.Generator().manual_seed(2))
    assert torch.cov(z.T).flatten().tolist() == pytest.approx([x / 16 for x in (4.0, 3.0, 3.0, 2.5)], rel=0.03)
    weights, _, covariances = full.gaussian_components()[0]
    assert weights.tolist() == [1.0] and torch.allclose(covariances[0], sigma)


def test_gmm_finds_two_separated_clusters_by_bic(fitted):
    _, _, densities, report = fitted
    gmm = densities["gmm"]
    assert isinstance(gmm, GaussianMixture)
    assert report["gmm_components"] == [1, 2]  # class 0 is one Gaussian, class 1 two clusters
    weights, means, covariances = gmm.gaussian_components()[1]
    order = means[:, 0].argsort()
    assert weights[order].tolist() == pytest.approx([0.75, 0.25], abs=1e-3)
    assert means[order, 0].tolist() == pytest.approx([-6.0, 6.0], abs=0.1)
    assert covariances[order].diagonal(dim1=1, dim2=2).flatten().tolist() == pytest.approx([0.09] * 6, rel=0.25)
    assert gmm.mean[1, 0].item() == pytest.approx(0.75 * -6 + 0.25 * 6, abs=0.1)  # the mixture's mean
    # Components are picked with their weights; θ scales each one's spread around its own mean.
    z = sample_codes(gmm, torch.full((2, 3), 0.5), 1, torch.ones(20_000, dtype=torch.long), torch.Generator().manual_seed(0))
    right = z[:, 0] > 0
    assert right.float().mean().item() == pytest.approx(0.25, abs=0.01)
    assert z[right, 1].std().item() == pytest.approx(0.5 * 0.3, rel=0.05)
    assert z[~right, 0].mean().item() == pytest.approx(-6.0, abs=0.05)


def test_gmm_with_one_candidate_fixes_the_number():
    codes, labels = two_classes()
    gmm = GaussianMixture(components=[3], seed=0).fit(codes, labels, 2)
    assert gmm.components == [3, 3] and gmm.weights.sum(1).tolist() == pytest.approx([1.0, 1.0])


def test_kde_draws_stay_within_a_few_bandwidths_of_a_training_code(fitted):
    codes, labels, densities, report = fitted
    kde = densities["kde"]
    assert isinstance(kde, KernelDensity)
    diag = densities["diag"]
    # The bandwidth is the chosen multiple of σ_y, per class.
    multiples = torch.tensor(report["kde_bandwidth_multiple"])
    assert torch.allclose(kde.bandwidth, multiples[:, None] * diag.std, rtol=1e-5)
    # Two tight clusters far apart (σ_x ≈ 5.2, clusters 0.3 wide): a smaller multiple than for one Gaussian.
    assert multiples[1] < multiples[0]
    labels_drawn = torch.tensor([0, 1]).repeat_interleave(2000)
    z = sample_codes(kde, torch.ones(2, 3), 1, labels_drawn, torch.Generator().manual_seed(3))
    for label in (0, 1):
        members = codes[labels == label]
        scaled = (z[labels_drawn == label, None, :] - members[None]) / kde.bandwidth[label]
        nearest = scaled.abs().amax(-1).amin(-1)  # in bandwidths, the nearest training code
        assert nearest.max().item() < 5.0
    # θ = 0 gives training codes themselves.
    z0 = sample_codes(kde, torch.zeros(2, 3), 1, labels_drawn, torch.Generator().manual_seed(3))
    assert all(bool((codes[labels == y] == row).all(1).any()) for y, row in zip(labels_drawn.tolist(), z0))


def test_prior_is_standard_normal_scaled_by_theta_over_sqrt_n():
    prior = Prior().load_state_dict({}, num_classes=3, latent_dim=2)
    theta = torch.tensor([[0.5, 1.0], [2.0, 2.0], [1.0, 1.0]])
    labels = torch.tensor([0, 1]).repeat_interleave(100_000)
    z = sample_codes(prior, theta, 4, labels, torch.Generator().manual_seed(0))
    assert z.abs().mean().item() < 1.0 and prior.mean.abs().sum().item() == 0.0
    assert z[labels == 0].std(0).tolist() == pytest.approx([0.25, 0.5], rel=0.01)
    assert z[labels == 1].std(0).tolist() == pytest.approx([1.0, 1.0], rel=0.01)
    assert z[labels == 0].mean(0).tolist() == pytest.approx([0.0, 0.0], abs=0.005)


@pytest.mark.parametrize(("theta", "n"), [(1.0, 1), (0.0, 1), (0.0, 3), (0.4, 2), (0.73, 5)])
def test_diag_draws_the_codes_simple_always_drew(theta, n):
    """Simple on the diagonal density against the formula of catvae before class densities:
    (1/n) Σ_i (μ_y + θσ_y ⊙ ε_i) with ε = randn((n, K, D)) first from the generator. The same
    draws; equal bit for bit where the arithmetic is (n = 1 with θ = 1 or 0); otherwise averaging
    before scaling rounds differently, within a few float32 ulps (θ = 0, n = 3: the old mean of
    three μ_y is off μ_y by an ulp, the new code is μ_y exactly)."""
    g = torch.Generator().manual_seed(5)
    stats = ClassLatentStats(torch.randn(10, 20, generator=g) * 3, torch.rand(10, 20, generator=g) + 0.1, torch.ones(10))
    labels = target_labels(10, 50)
    new_generator, old_generator = torch.Generator().manual_seed(11), torch.Generator().manual_seed(11)
    new = Simple(theta, n).sample(stats, labels, new_generator)
    draws = torch.randn((n, len(labels), 20), generator=old_generator)
    old = (stats.mean[labels] + (theta * stats.std)[labels] * draws).mean(dim=0)
    if theta in (0.0, 1.0) and n == 1:
        assert torch.equal(new, old)
    else:
        assert torch.allclose(new, old, rtol=0, atol=4 * torch.finfo(torch.float32).eps * old.abs().max().item())
    assert torch.equal(new_generator.get_state(), old_generator.get_state())  # nothing else drawn


@pytest.mark.parametrize("name", DENSITY_NAMES)
def test_theta_gradient_flows_through_every_density(fitted, name):
    density = fitted[2][name]
    labels = torch.tensor([0, 0, 0, 1, 1])
    theta = torch.full((2, 3), 0.5, requires_grad=True)
    z = sample_codes(density, theta, 2, labels, torch.Generator().manual_seed(0))
    (z**2).sum().backward()
    assert theta.grad is not None and bool((theta.grad != 0).all())
    one_class = torch.full((2, 3), 0.5, requires_grad=True)
    sample_codes(density, one_class, 2, torch.zeros(4, dtype=torch.long), torch.Generator().manual_seed(0)).sum().backward()
    assert one_class.grad is not None and one_class.grad[1].abs().sum().item() == 0.0  # class 1 unused: no gradient


@pytest.mark.parametrize("name", DENSITY_NAMES)
@pytest.mark.parametrize("kind", [Simple, Medium1, Medium2])
def test_every_generator_draws_from_every_density(fitted, name, kind):
    density = fitted[2][name]
    labels = target_labels(2, 30)
    first = kind(0.6, 2).sample(density, labels, torch.Generator().manual_seed(4))
    again = kind(0.6, 2).sample(density, labels, torch.Generator().manual_seed(4))
    assert first.shape == (60, 3) and torch.equal(first, again) and bool(torch.isfinite(first).all())
    centred = kind(0.0, 2).sample(density, labels, torch.Generator().manual_seed(4))
    if name in ("diag", "full", "prior"):  # θ = 0: the class mean (a mixture or KDE: a component mean or code)
        assert torch.equal(centred, density.mean[labels])


def test_diag_components_and_fit_report(fitted):
    _, _, densities, report = fitted
    diag = densities["diag"]
    _, means, covariances = diag.gaussian_components()[0]
    assert torch.equal(covariances[0], torch.diag(diag.std[0] ** 2)) and torch.equal(means[0], diag.mean[0])
    assert densities["kde"].gaussian_components() is None and densities["prior"].gaussian_components() is None
    assert set(report["fit_seconds"]) == {"diag", "full", "gmm", "kde"}


def test_densities_file_round_trip(fitted, tmp_path):
    _, _, densities, _ = fitted
    path = tmp_path / "densities.pt"
    save_densities(densities, path)
    again = load_densities(path, densities["diag"])
    assert set(again) == set(DENSITY_NAMES)
    for name in ("full", "gmm", "kde"):
        for field, tensor in densities[name].state_dict().items():
            assert torch.equal(again[name].state_dict()[field], tensor)
        labels = target_labels(2, 20)
        assert torch.equal(
            Medium2(0.7, 1).sample(again[name], labels, torch.Generator().manual_seed(9)),
            Medium2(0.7, 1).sample(densities[name], labels, torch.Generator().manual_seed(9)),
        )


def test_a_corrupt_densities_file_is_an_artifact_error(fitted, tmp_path):
    _, _, densities, _ = fitted
    stats = densities["diag"]
    path = tmp_path / "densities.pt"
    save_densities(densities, path)
    path.write_bytes(path.read_bytes()[:300])  # truncated
    with pytest.raises(ArtifactError, match=r"densities.pt: truncated or corrupt.*Make it again with: python -m catvae.train x"):
        load_densities(path, stats, "python -m catvae.train x")
    stats.save(path)  # another kind of artifact
    with pytest.raises(ArtifactError, match="holds a 'stats' artifact where a 'densities' one belongs"):
        load_densities(path, stats)
    state = {name: densities[name].state_dict() for name in ("full", "gmm", "kde")}  # the earlier format
    state["gmm"]["means"] = state["gmm"]["means"][:, :, :2]  # another latent_dim
    torch.save(artifact_format.stamp("densities", state), path)
    with pytest.raises(ArtifactError, match="its gmm density has shapes"):
        load_densities(path, stats)
    state = {name: densities[name].state_dict() for name in ("full", "gmm", "kde")}  # the earlier format
    state["full"]["chol"] = torch.full_like(state["full"]["chol"], math.nan)
    torch.save(artifact_format.stamp("densities", state), path)
    with pytest.raises(ArtifactError, match="its full density holds NaN"):
        load_densities(path, stats)


FORMAT1 = Path(__file__).parent / "fixtures" / "densities-format1.pt"


def test_a_densities_file_of_the_earlier_format_still_loads():
    """``fixtures/densities-format1.pt`` was written by catvae before each entry carried its node
    (commit 3b1fb7b: ``save_densities`` of ``fit_densities(*two_classes(60, seed=7), 2, FitOptions(
    gmm_components=(1, 2, 3), kde_bandwidths=(0.05, 0.1, 0.2, 0.5, 1.0), seed=0))``): the states of
    full, gmm and kde at its top level. It loads with every density, and holds what the classes fit
    today from the same codes, tensor for tensor."""
    raw = torch.load(FORMAT1, weights_only=True)
    assert {"full", "gmm", "kde", "options"} <= set(raw) and "densities" not in raw
    codes, labels = two_classes(per_class=60, seed=7)
    today, report = fit_densities(codes, labels, 2, NODES)
    stats = today["diag"]
    loaded = load_densities(FORMAT1, stats)
    assert list(loaded) == list(DENSITY_NAMES) and loaded["diag"] is stats
    assert report["gmm_components"] == [1, 2] and report["kde_bandwidth_multiple"] == [0.484313, 0.484313]
    for name in ("full", "gmm", "kde"):
        assert type(loaded[name]) is type(today[name])
        for field, tensor in today[name].state_dict().items():
            # What the file holds is read back bit for bit; today's refit agrees to float rounding
            # (scikit-learn's EM and the BLAS build may change the last bits of a Cholesky factor).
            assert torch.equal(loaded[name].state_dict()[field], raw[name][field]), (name, field)
            assert torch.allclose(loaded[name].state_dict()[field], tensor, rtol=1e-5, atol=1e-6), (name, field)
    assert loaded["gmm"].components == [1, 2]
    assert loaded["prior"].mean.shape == (2, 3) and loaded["prior"].mean.abs().sum().item() == 0.0
    labels_drawn = target_labels(2, 25)
    for name in DENSITY_NAMES:
        assert torch.allclose(
            Medium2(0.6, 2).sample(loaded[name], labels_drawn, torch.Generator().manual_seed(1)),
            Medium2(0.6, 2).sample(today[name], labels_drawn, torch.Generator().manual_seed(1)),
            rtol=1e-5,
            atol=1e-5,
        )


def test_each_entry_carries_the_node_that_rebuilds_it(fitted, tmp_path):
    """densities.pt holds, by name, each density's resolved node and state: a density added to the
    set (here a second mixture with its own options) is saved and rebuilt like the others, and a
    file without it names what it holds."""
    codes, labels, densities, _ = fitted
    extra = {"gmm2": {"_target_": "catvae.densities.gmm.GaussianMixture", "components": [2], "seed": 0}}
    more, report = fit_densities(codes, labels, 2, NODES | extra)
    assert report["gmm2_components"] == [2, 2] and report["gmm_components"] == [1, 2]
    path = tmp_path / "densities.pt"
    save_densities(more, path)
    entries = torch.load(path, weights_only=True)["densities"]
    assert list(entries) == [*DENSITY_NAMES, "gmm2"]
    assert entries["gmm"]["target"] == NODES["gmm"] and entries["gmm2"]["target"] == extra["gmm2"]
    assert entries["prior"]["state"] == {} and set(entries["kde"]["state"]) == {"codes", "offsets", "bandwidth"}
    again = load_densities(path, densities["diag"])
    assert again["gmm2"].name == "gmm2" and again["gmm2"].candidates == (2,) and again["gmm2"].components == [2, 2]
    assert torch.equal(again["gmm2"].means, more["gmm2"].means) and torch.equal(again["diag"].std, densities["diag"].std)
    save_densities({name: more[name] for name in DENSITY_NAMES}, path)
    with pytest.raises(ArtifactError, match=r"holds no class density 'gmm2' \(it holds diag, full, gmm, kde, prior\)") as missing:
        require(load_densities(path, densities["diag"]), "gmm2", path)
    assert "+latent@densities.gmm2=gmm2" in str(missing.value)
    state = torch.load(path, weights_only=True)
    state["densities"]["gmm"]["state"]["chol"] = state["densities"]["gmm"]["state"]["chol"][:1]
    torch.save(state, path)
    with pytest.raises(ArtifactError, match=r"its gmm density has shapes .* \(expected 2 classes × 3 dimensions\)"):
        load_densities(path, densities["diag"])


def test_an_entry_whose_class_is_not_here_leaves_the_others_usable(fitted, tmp_path):
    """A density whose module is not importable (or not trusted) in this process: the file's other
    densities load; asking for that one says what it is and what to do."""
    _, _, densities, _ = fitted
    path = tmp_path / "densities.pt"
    save_densities(densities, path)
    state = torch.load(path, weights_only=True)
    state["densities"]["box"] = {"target": {"_target_": "mylab.densities.Box", "side": 1.0}, "state": {}}
    torch.save(state, path)
    loaded = load_densities(path, densities["diag"])
    assert torch.equal(require(loaded, "kde", path).codes, densities["kde"].codes)
    with pytest.raises(ArtifactError, match=r"its box density is a mylab.densities.Box, which cannot be built here") as refused:
        require(loaded, "box", path)
    assert "CATVAE_TRUSTED_TARGETS" in str(refused.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+densities.gmm.n_init=3", "densities.gmm.n_init=3 is not allowed: an argument of catvae.densities.gmm.GaussianMixture"),
        ("~latent@densities.diag", "densities=['full', 'gmm', 'kde', 'prior'] is not allowed: class density nodes with diag"),
        ("latent@densities.kde=gmm", "densities.kde.name='gmm' is not allowed: 'kde': a class density's name is its key"),
        ("densities.full._target_=os.system", "densities.full._target_='os.system' is not allowed: an importable class density"),
        ("densities.gmm.seed=-1", "densities.gmm.seed=-1 is not allowed: an integer >= 0"),
        ("+densities.diag.mean=1", "densities.diag.mean=1 is not allowed: a tensor of fitted statistics (diag has no"),
        ("+latent.components=[0]", "latent.components=[0] is not allowed: an argument of catvae.densities.diag.ClassLatentStats"),
    ],
)
def test_density_nodes_are_built_dry(make_config, override, message):
    with pytest.raises(ConfigError) as caught:
        validate_train(make_config("train", [override]))
    assert str(caught.value).startswith(message)


def test_latent_must_be_one_train_fits_and_builds_in_search(make_config):
    fitted_here = r"latent='kde' is not allowed: one of the densities train fits \(diag, full, gmm, prior\)"
    with pytest.raises(ConfigError, match=fitted_here):
        validate_train(make_config("train", ["latent=kde", "~latent@densities.kde"]))
    with pytest.raises(ConfigError, match=r"latent.components.0=0 is not allowed: an integer >= 1"):
        validate_search(make_config("search_job", ["latent=gmm", "latent.components=[0]"]))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("densities.gmm.components=[2,0]", "densities.gmm.components.1=0 is not allowed: an integer >= 1"),
        ("densities.gmm.components=[]", "densities.gmm.components=[] is not allowed: a non-empty list"),
        ("densities.kde.bandwidths=[0.1,-1]", "densities.kde.bandwidths.1=-1.0 is not allowed: a number > 0"),
        ("densities.kde.holdout=1", "densities.kde.holdout=1.0 is not allowed: a number > 0 and < 1"),
        ("densities.gmm.max_iter=0", "densities.gmm.max_iter=0 is not allowed: an integer >= 1"),
    ],
)
def test_fit_options_are_checked(make_config, override, message):
    with pytest.raises(ConfigError) as caught:
        validate_train(make_config("train", [override]))
    assert str(caught.value).startswith(message)


@pytest.mark.slow
def test_latent_group_selects_a_density(make_config):
    cfg = make_config("train", ["latent=gmm"])
    assert cfg.latent.name == "gmm" and list(cfg.densities.gmm.components) == [1, 4, 16]
    validate_train(cfg)
    for name in ("search_job", "generate"):
        assert make_config(name, ["latent=kde"]).latent.name == "kde"
    assert list(cfg.densities) == list(DENSITY_NAMES) and cfg.latent.name in cfg.densities
    assert make_config("train", ["seed=3"]).densities.gmm.seed == 3  # the fits' random_state is the run's seed


def test_class_mean_check_decodes_each_mixtures_main_mode():
    """The mean of a two-mode class can fall in another class's region; its heaviest component cannot."""
    from types import SimpleNamespace

    from catvae.evaluation.evaluator import class_mean_check

    # A 1-D "latent space" whose decoded image is read back as the label round(z): class 0 has
    # modes at 0 (weight 0.7) and 2 (weight 0.3), so its mean 0.6 decodes to 1; class 1 is one mode at 1.
    components = [
        (torch.tensor([0.7, 0.3]), torch.tensor([[0.0], [2.0]]), torch.ones(2, 1, 1)),
        (torch.tensor([1.0]), torch.tensor([[1.0]]), torch.ones(1, 1, 1)),
    ]
    density = SimpleNamespace(mean=torch.tensor([[0.6], [1.0]]), num_classes=2, gaussian_components=lambda: components)
    decoder = SimpleNamespace(images=lambda z, labels=None: z.clone())
    classifier = SimpleNamespace(predict=lambda images, bf16=False: images[:, 0].round().long())
    check = class_mean_check(density, decoder, classifier)
    assert check["predicted"] == [1, 1] and check["num_correct"] == 1
    assert check["modes"] == [0, 1] and check["modes_correct"] == 2
    assert check["components_correct_per_label"] == [0.7, 1.0] and check["components_correct"] == 0.85
