"""Reproducibility on record: the same seed gives the same numbers, and every summary says what made it."""

import datetime
import json
import platform
import shutil
import subprocess
from pathlib import Path

import hydra
import numpy
import omegaconf
import optuna
import pytest
import pytorch_lightning
import torch
import wandb
from conftest import TINY, compose_config, install_judge
from omegaconf import OmegaConf

import catvae
from catvae.artifacts import fingerprint
from catvae.config.settings import run_config
from catvae.core import provenance as prov
from catvae.densities.diag import ClassLatentStats


@pytest.fixture(scope="module")
def twice(tmp_path_factory, judge_cache) -> list[tuple[dict, Path, object]]:
    """The tiny pipeline trained twice with seed 3, on the CPU, into two log folders (the judge copied)."""
    from catvae.train import train

    runs = []
    for name in ("first", "second"):
        log_dir = tmp_path_factory.mktemp(name) / "logs"
        install_judge(judge_cache, log_dir)
        cfg = compose_config("train", [*TINY, "seed=3", "trainer=cpu", "logger=none"], log_dir)
        summary = Path(train(cfg))
        runs.append((json.loads(summary.read_text()), summary.parent, cfg))
    return runs


def test_same_seed_same_metrics_on_cpu(twice):
    (first, first_dir, _), (second, second_dir, _) = twice
    assert first_dir != second_dir and first["run_dir"] != second["run_dir"]
    for part in ("vae_test", "classifier", "class_means", "generator"):
        assert first[part] == second[part], part
    a, b = ClassLatentStats.load(first_dir / "stats.pt"), ClassLatentStats.load(second_dir / "stats.pt")
    assert torch.equal(a.mean, b.mean) and torch.equal(a.std, b.std) and torch.equal(a.count, b.count)
    for name in ("vae.pt", "classifier.pt"):
        state_a = torch.load(first_dir / name, weights_only=True)
        state_b = torch.load(second_dir / name, weights_only=True)
        for part in ("encoder", "decoder", "state_dict"):
            for key, tensor in state_a.get(part, {}).items():
                assert torch.equal(tensor, state_b[part][key]), (name, part, key)
    assert first["key"] == {"data": "mnist", "vae": "elbo", "latent_dim": 4, "seed": 3}
    # Byte-identical files: a same-seed retraining on the CPU keeps the key's search records valid.
    assert fingerprint(first_dir) == fingerprint(second_dir)


def test_summary_records_its_provenance(twice):
    started = datetime.datetime.now(datetime.timezone.utc)
    (summary, folder, cfg), _ = twice
    record = summary["provenance"]
    assert record["seed"] == cfg.seed == 3
    assert record["config"] == OmegaConf.to_container(cfg, resolve=True) == summary["config"]
    assert record["versions"] == {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pytorch_lightning": pytorch_lightning.__version__,
        "hydra-core": hydra.__version__,
        "omegaconf": omegaconf.__version__,
        "optuna": optuna.__version__,
        "wandb": wandb.__version__,
        "numpy": numpy.__version__,
        "catvae": catvae.__version__,
    }
    assert record["device"] == "cpu" and record["device_name"]
    made = datetime.datetime.fromisoformat(record["time"])
    assert made.tzinfo is not None and abs((started - made).total_seconds()) < 600
    root = Path(catvae.__file__).resolve().parent.parent
    if shutil.which("git") and (root / ".git").exists():
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
        ).stdout
        assert record["git"] == {"commit": head, "dirty": bool(status.strip())}
    else:
        assert record["git"] is None
    assert json.loads((folder / "summary.json").read_text())["provenance"] == record


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git to make a repository")
def test_git_state_of_a_checkout_and_of_anything_else(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "code.py").write_text("x = 1\n")
    git(repo, "add", "code.py")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    assert prov.git_state(repo) == {"commit": git(repo, "rev-parse", "HEAD"), "dirty": False}
    (repo / "notes.txt").write_text("untracked files do not make the tree dirty\n")
    assert prov.git_state(repo)["dirty"] is False
    (repo / "code.py").write_text("x = 2\n")
    assert prov.git_state(repo)["dirty"] is True
    # A wheel installed in a virtual environment inside some repository: not catvae's commit.
    site = repo / ".venv" / "lib" / "site-packages"
    site.mkdir(parents=True)
    (site / ".git").mkdir()  # even a stray .git entry does not make it the top of a checkout
    assert prov.git_state(site) is None
    assert prov.git_state(tmp_path / "elsewhere") is None
    # No git installed: nothing recorded, nothing fails.
    monkeypatch.setattr(prov.shutil, "which", lambda name: None)
    assert prov.git_state(repo) is None


def test_a_config_that_only_hydra_can_resolve_is_kept_as_written():
    cfg = OmegaConf.create({"seed": 1, "paths": {"out": "${hydra:runtime.output_dir}", "log": "logs"}, "n": "${seed}"})
    record = prov.provenance(run_config(cfg), "cpu")  # what the commands hand down (catvae.config.settings)
    assert record["config"] == {"seed": 1, "paths": {"out": "${hydra:runtime.output_dir}", "log": "logs"}, "n": 1}
    assert record["seed"] == 1 and record["device"] == "cpu"
    assert prov.provenance(cfg, "cpu")["config"] == record["config"]  # a config node is made plain the same way
