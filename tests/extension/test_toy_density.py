"""A class density added from outside catvae (issue 15, part 2): a module and a YAML of this folder,
no edit under ``catvae/``. A tiny train fits it beside the default densities, a one-job grid search
draws from it, and generate uses the search's best; the published ``densities.pt`` reads back."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, compose_config
from helpers import command_env, run_command
from toy_density import UniformBox

from catvae.artifacts import ArtifactKey, load_models
from catvae.core.errors import ConfigError
from catvae.densities.base import sample_codes
from catvae.generators.gaussian import Simple, generate_images, target_labels

pytestmark = pytest.mark.slow  # trainings of their own: outside the fast loop

HERE = Path(__file__).resolve().parent
SEARCH_PATH = f"hydra.searchpath=[file://{HERE / 'conf'}]"  # where conf/latent/toy.yaml is found
TRUST = {"CATVAE_TRUSTED_TARGETS": "toy_density.*"}  # the documented way to trust a module of one's own
CHEAP = ["eval.cas=false", "eval.sample_metrics=[]"]


@pytest.fixture(scope="module")
def trusted() -> Iterator[None]:
    """``CATVAE_TRUSTED_TARGETS`` set while this module's tests run (then as it was)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in TRUST.items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="module")
def toy_run(trusted, tmp_path_factory) -> dict:
    """The tiny pipeline trained with the toy density among its densities and evaluated on it."""
    from catvae.train import train

    log_dir = tmp_path_factory.mktemp("toy") / "logs"
    cfg = compose_config("train", [SEARCH_PATH, *TINY, *CHEAP, "+latent@densities.toy=toy", "latent=toy"], log_dir)
    summary = json.loads(Path(train(cfg)).read_text())
    return {"log_dir": log_dir, "summary": summary, "key": ArtifactKey("mnist", "elbo", 4, 0)}


def test_train_fits_and_publishes_the_toy_density(toy_run):
    summary = toy_run["summary"]
    assert summary["latent"] == summary["generator"]["latent"] == "toy"
    assert set(summary["densities"]["fit_seconds"]) == {"diag", "full", "gmm", "kde", "toy"}
    models = load_models(toy_run["key"], toy_run["log_dir"] / "artifacts")
    folder = models.folder
    entries = torch.load(folder / "densities.pt", weights_only=True)["densities"]
    assert list(entries) == ["diag", "full", "gmm", "kde", "prior", "toy"]
    assert entries["toy"]["target"] == {"_target_": "toy_density.UniformBox", "scale": 1.0}
    box = models.density("toy")
    assert isinstance(box, UniformBox) and box.name == "toy" and box.mean.shape == (10, 4)
    assert torch.equal(box.half, entries["toy"]["state"]["half"]) and bool((box.half > 0).all())
    # The box holds the class's codes: its half-width is at least the codes' standard deviation.
    assert bool((box.half >= models.stats.std).all())
    # Drawn codes: uniform on the box shrunk by θ, so mean c_y and standard deviation θ h_y / √3.
    labels = target_labels(10, 4000)
    theta = torch.full((10, 4), 0.5)
    z = sample_codes(box, theta, 1, labels, torch.Generator().manual_seed(0)).view(10, 4000, 4)
    spread = 0.5 * box.half
    assert torch.allclose(z.mean(1), box.mean, atol=0.05 * float(spread.max()))
    assert torch.allclose(z.std(1), spread / math.sqrt(3), rtol=0.05)
    assert bool(((z - box.mean[:, None]).abs() <= spread[:, None] + 1e-6).all())
    # Every default density is still there, as before.
    assert {"full", "gmm", "kde", "prior"} <= set(models.densities)


def test_a_search_and_generate_draw_from_it(toy_run, tmp_path):
    from catvae.generate import generate

    log_dir = toy_run["log_dir"]
    env = command_env(log_dir, pythonpath=[HERE], extra=TRUST)
    command = ["-m", SEARCH_PATH, "latent=toy", "latent_dim=4"]
    command += ["data.limit_train=1200", "data.limit_test=300", "data.val_size=200", "eval.samples_per_label=6"]
    command += [*CHEAP, "generator.theta=0.7", "generator.n=1"]
    result = run_command("search", *command, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = Path(result.stdout.strip().splitlines()[-1].removeprefix("sweep summary: "))
    job = json.loads((sweep / "0" / "result.json").read_text())
    assert job["latent"] == "toy" and job["theta"] == 0.7
    record = json.loads((log_dir / "search" / "best" / "mnist" / "elbo-4" / "seed0" / "toy-simple.json").read_text())
    assert record["theta"] == 0.7 and record["objective"] == pytest.approx(job["objective"])

    out = tmp_path / "toy.npz"
    overrides = [SEARCH_PATH, "latent=toy", "latent_dim=4", "label=3", "num=8", "generator.from_search=best", f"out={out}"]
    generate(compose_config("generate", overrides, log_dir))
    written = np.load(out)
    models = load_models(toy_run["key"], log_dir / "artifacts")
    expected = generate_images(Simple(0.7, 1), models.density("toy"), models.decoder, target_labels([3], 8), 0)
    assert written["labels"].tolist() == [3] * 8
    assert np.allclose(written["images"].reshape(8, -1), expected.numpy(), atol=1e-6)


def test_its_options_are_checked_at_their_config_key(trusted, tmp_path):
    from catvae.config.validate import validate_train

    cfg = compose_config("train", [SEARCH_PATH, "+latent@densities.toy=toy", "latent=toy", "densities.toy.scale=0"], tmp_path)
    with pytest.raises(ConfigError, match=r"^densities.toy.scale=0 is not allowed: a number > 0"):
        validate_train(cfg)


def test_an_untrusted_module_is_refused_saying_how_to_trust_it(tmp_path, monkeypatch):
    from catvae.config.validate import validate_train

    monkeypatch.delenv("CATVAE_TRUSTED_TARGETS", raising=False)
    cfg = compose_config("train", [SEARCH_PATH, "+latent@densities.toy=toy", "latent=toy"], tmp_path)
    with pytest.raises(ConfigError, match=r"^latent._target_='toy_density.UniformBox' is not allowed") as refused:
        validate_train(cfg)
    assert "CATVAE_TRUSTED_TARGETS=yourpackage.*" in str(refused.value)
