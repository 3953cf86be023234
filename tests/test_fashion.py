"""data=fashion_mnist: Debian's dataset-fashion-mnist through the IDX source, class names in grids and
``generate``, a missing folder that names the package, and the whole pipeline on a small slice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, compose_config
from helpers import run_command
from matplotlib.image import imread

from catvae.config.registry import instantiate
from catvae.config.validate import validate_train
from catvae.core.errors import ConfigError
from catvae.data.idx import IdxFormatError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
PACKAGE_HINT = "not found: install the Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist)"
needs_fashion = pytest.mark.skipif(
    not FASHION_DIR.exists(),
    reason=f"{FASHION_DIR} not installed (Debian package dataset-fashion-mnist; .ci/run installs it when it runs as root)",
)


def test_class_names_of_each_data_config(make_config):
    assert make_config("train", ["data=fashion_mnist"]).data.class_names == NAMES
    assert make_config("train").data.class_names == [str(label) for label in range(10)]
    cfg = make_config("train", ["data=idx", "data.root=/data/digits"])
    assert cfg.data.class_names is None
    assert instantiate(cfg.data).class_names == [str(label) for label in range(10)]  # null: the label numbers


def test_class_names_must_fit_the_classes(make_config):
    cfg = make_config("train", ["data=fashion_mnist", "data.class_names=[a,b]"])
    with pytest.raises(ConfigError, match=r"data.class_names=\['a', 'b'\] is not allowed: null or a list of 10 distinct"):
        validate_train(cfg)


@needs_fashion
def test_fashion_config_composes_and_loads(make_config):
    cfg = make_config("train", ["data=fashion_mnist"])
    validate_train(cfg)
    assert (cfg.data.name, cfg.data.root) == ("fashion_mnist", str(FASHION_DIR))
    data = instantiate(cfg.data)
    data.setup()
    train_x, train_y = data.train
    assert len(train_x) + len(data.val[0]) == 60000 and len(data.val[0]) == 5000
    assert train_x.shape[1] == 784 and sorted(train_y.unique().tolist()) == list(range(10))
    test_x, test_y = data.test["test"]
    assert test_x.shape == (10000, 784) and test_x.dtype == torch.float32
    assert torch.bincount(test_y).tolist() == [1000] * 10  # Fashion-MNIST's test set is balanced
    assert data.class_names == NAMES and data.describe() == f"dataset 'fashion_mnist' ({FASHION_DIR})"


def test_missing_folder_names_the_debian_package(make_config, tmp_path):
    missing = tmp_path / "no-fashion-here"
    data = instantiate(make_config("train", ["data=fashion_mnist", f"data.root={missing}"]).data)
    with pytest.raises(IdxFormatError) as caught:
        data.setup()
    assert str(caught.value).startswith(f"dataset folder {missing} {PACKAGE_HINT}")


@pytest.mark.subprocess
def test_missing_folder_from_the_command_line(tmp_path):
    missing = tmp_path / "no-fashion-here"
    result = run_command(
        "train", "data=fashion_mnist", f"data.root={missing}", "logger=none", log_dir=tmp_path / "logs", cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"error: dataset folder {missing} {PACKAGE_HINT}" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "logs" / "artifacts").exists()


@pytest.fixture(scope="module")
def fashion_trained(tmp_path_factory) -> dict:
    """One tiny pipeline on Fashion-MNIST (D = 2, so the views are drawn without a projection)."""
    if not FASHION_DIR.exists():
        pytest.skip(f"{FASHION_DIR} not installed (Debian package dataset-fashion-mnist)")
    from catvae.train import train

    log_dir = tmp_path_factory.mktemp("fashion") / "logs"
    overrides = [*TINY, "data=fashion_mnist", "latent_dim=2", "logger=none"]
    cfg = compose_config("train", overrides, log_dir)
    return {"summary": Path(train(cfg)), "log_dir": log_dir}


def test_train_on_fashion_publishes_under_its_name(fashion_trained):
    folder = fashion_trained["log_dir"] / "artifacts" / "fashion_mnist" / "elbo-2" / "seed0"
    assert fashion_trained["summary"] == folder / "summary.json"
    summary = json.loads(fashion_trained["summary"].read_text())
    assert summary["key"]["data"] == "fashion_mnist" and summary["config"]["data"]["class_names"] == NAMES
    assert sorted(summary["generator"]["per_label"]) == [str(label) for label in range(10)]  # keys stay numbers
    assert sorted(summary["artifacts"]) == sorted(p.name for p in folder.iterdir() if p.name != "summary.json")
    assert imread(folder / "latent.png").shape[:2] == (720, 864)
    assert imread(folder / "manifold.png").shape[:2] == (20 * 30 + 2, 20 * 30 + 2)
    grid = imread(folder / "samples.png")
    width = 2 * (4 * 30 + 2)  # grid_per_label=4 images a row, enlarged twice; the names in a margin on the left
    assert grid.shape[0] == 2 * (10 * 30 + 2) and grid.shape[1] > width + 60  # "Ankle boot" is wider than 60 px
    assert grid[:, : grid.shape[1] - width, :3].max() == 1.0  # white names on black


def test_generate_by_class_name(fashion_trained, make_config, tmp_path, capsys):
    from catvae.generate import generate

    log_dir = fashion_trained["log_dir"]
    out = tmp_path / "sneakers.npz"
    overrides = ["data=fashion_mnist", "latent_dim=2", "num=4", f"out={out}"]
    generate(make_config("generate", [*overrides, "label=Sneaker"], log_dir=log_dir))
    with np.load(out) as saved:
        assert saved["labels"].tolist() == [7] * 4
    generate(make_config("generate", [*overrides, "label=7"], log_dir=log_dir))  # numbers still work
    with np.load(out) as saved:
        assert saved["labels"].tolist() == [7] * 4
    generate(make_config("generate", [*overrides, "label=Ankle boot"], log_dir=log_dir))
    with np.load(out) as saved:
        assert saved["labels"].tolist() == [9] * 4
    with pytest.raises(SystemExit) as refused:
        generate(make_config("generate", [*overrides, "label=Sneakers"], log_dir=log_dir))
    assert refused.value.code == 2
    assert (
        "error: label='Sneakers' is not allowed: \"all\" or an integer label from 0 to 9 or a class name "
        "(T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot)"
    ) in capsys.readouterr().err
