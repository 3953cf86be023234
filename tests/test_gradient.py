"""θ fitted by gradient (search=gradient): the surrogate, the fit, and the command on the tiny pipeline."""

import csv
import json
import subprocess
from pathlib import Path

import pytest
import torch
from helpers import run_command

from catvae.sweep.gradient import GradientSettings, fit_theta, surrogate


def test_surrogate_is_cross_entropy_plus_weighted_pairwise_cosine():
    images = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    labels = torch.tensor([0, 0, 1, 1])
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    terms = surrogate(images, logits, labels, weight=0.5)
    # label 0: orthogonal pair, cos 0; label 1: identical pair, cos 1 → mean 0.5
    assert float(terms["cos"]) == pytest.approx(0.5)
    log_softmax = torch.log_softmax(logits, dim=1)
    ce = -float(log_softmax[torch.arange(4), labels].mean())
    assert float(terms["ce"]) == pytest.approx(ce)
    assert float(terms["loss"]) == pytest.approx(ce + 0.25)


def toy_problem():
    """Codes in 2-D, class y centred at (±2, 0); the 'decoder' is the identity plus a constant pixel so cosines are
    defined; the 'classifier' reads the sign of the first coordinate. Noise only hurts accuracy and only helps
    diversity, so the fit must shrink θ at weight 0 and grow it at a large weight."""
    means = torch.tensor([[-2.0, 0.0], [2.0, 0.0]])
    std = torch.ones(2, 2)

    def sample(theta, labels, noise):
        return means[labels] + theta[labels] * std[labels] * torch.randn(len(labels), 2, generator=noise)

    def decode(codes, labels):
        return torch.cat([codes, torch.ones(len(codes), 1)], dim=1)

    def classify(images):
        return torch.stack([-images[:, 0], images[:, 0]], dim=1) * 3

    return sample, decode, classify


@pytest.mark.slow
def test_fit_shrinks_theta_for_accuracy_and_grows_it_for_diversity():
    sample, decode, classify = toy_problem()
    settings = GradientSettings(weights=(0.0,), steps=60, lr=0.05, batch_per_label=64, theta_init=1.0, theta_high=3.0)
    init = torch.tensor(1.0, dtype=torch.float64)
    accurate, _ = fit_theta(sample, decode, classify, init, 2, 2, 0.0, settings, seed=0)
    diverse, terms = fit_theta(sample, decode, classify, init, 2, 2, 20.0, settings, seed=0)
    assert float(accurate) < 0.6 < 1.0 < float(diverse) <= 3.0
    assert set(terms) == {"loss", "ce", "cos"}


def test_fit_gives_each_class_and_dimension_its_own_theta():
    """Medium-2's L×D θ: only dimension 0 decides the class, so at weight 0 θ[:, 0] shrinks while θ[:, 1] does not."""
    sample, decode, classify = toy_problem()
    settings = GradientSettings(weights=(0.0,), steps=60, lr=0.05, batch_per_label=64, theta_init=1.0, theta_high=3.0)
    theta, _ = fit_theta(sample, decode, classify, torch.ones(2, 2, dtype=torch.float64), 2, 2, 0.0, settings, seed=0)
    assert theta.shape == (2, 2)
    assert bool((theta[:, 0] < 0.6).all()) and bool((theta[:, 1] > 0.8).all())


def run_search(log_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    return run_command("search", "latent_dim=4", "eval.samples_per_label=6", *overrides, log_dir=log_dir)


@pytest.mark.subprocess
def test_gradient_search_writes_a_sweep_folder_and_a_record_generate_uses(trained, tmp_path):
    result = run_search(
        trained["log_dir"],
        "search=gradient",
        "generator=medium2",
        "search.steps=3",
        "search.batch_per_label=4",
        "search.weights=[0,2]",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    folder = Path(result.stdout.strip().splitlines()[-1].removeprefix("sweep summary: "))
    assert folder.parent.name == "multiruns" and folder.name.endswith(tuple("0123456789")) and "-gradient_" in folder.name
    with open(folder / "trials.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["job"] for row in rows] == ["0", "1"]
    jobs = [json.loads((folder / row["job"] / "result.json").read_text()) for row in rows]
    assert [job["gradient"]["weight"] for job in jobs] == [0.0, 2.0]
    for job, row in zip(jobs, rows):
        assert len(job["theta"]) == 10 and len(job["theta"][0]) == 4  # L×D
        assert float(row["objective"]) == job["objective"] == pytest.approx(job["cos_pairwise"] + 1 - job["accuracy"])
    best = json.loads((folder / "best.json").read_text())
    assert best["objective"] == min(job["objective"] for job in jobs)
    record = json.loads(Path(best["record"]).read_text())
    assert record["theta"] == best["theta"] and record["sweep_dir"] == str(folder)

    out = tmp_path / "best.npz"
    arguments = ["latent_dim=4", "generator=medium2", "generator.from_search=best", "label=3", "num=5", f"out={out}"]
    generated = run_command("generate", *arguments, log_dir=trained["log_dir"])
    assert generated.returncode == 0, generated.stderr[-3000:]
    import numpy as np

    assert np.load(out)["images"].shape == (5, 28, 28)


@pytest.mark.parametrize(
    ("overrides", "message", "in_subprocess"),
    [
        (["search.weights=[]"], "error: search.weights=[] is not allowed: a non-empty list of numbers >= 0", False),
        (["search.steps=0"], "error: search.steps=0 is not allowed: an integer >= 1", False),
        (["search.lr=0"], "error: search.lr=0.0 is not allowed: a number > 0", False),
        (["search.batch_per_label=1"], "error: search.batch_per_label=1 is not allowed: an integer >= 2", False),
        pytest.param(["-m"], "error: search='gradient' is not allowed: a single run", True, marks=pytest.mark.subprocess),
    ],
)
def test_gradient_search_refuses_bad_settings(tmp_path, call_command, overrides, message, in_subprocess):
    """Refused in-process (the command's ``main``), and once as a real process."""
    if in_subprocess:
        result = run_search(tmp_path / "logs", "search=gradient", *overrides)
        code, stderr = result.returncode, result.stderr
    else:
        args = ["latent_dim=4", "eval.samples_per_label=6", "search=gradient", *overrides]
        code, stderr = call_command("search", *args, log_dir=tmp_path / "logs", cwd=tmp_path / "cwd")
    assert code == 2 and stderr.strip().splitlines()[-1].startswith(message), stderr[-2000:]
    assert "Traceback" not in stderr
