"""A NaN or infinite training loss stops the stage at once, and the previous artifacts stay byte-identical."""

from __future__ import annotations

import re

import pytest
from helpers import digest, run_command, snapshot

from catvae.artifacts import ArtifactKey
from catvae.core.errors import DivergenceError


@pytest.mark.slow
@pytest.mark.subprocess
def test_nan_vae_loss_stops_training_and_publishes_nothing(make_config, tmp_path, tiny, tiny_judge):
    from catvae.train import train

    log_dir = tmp_path / "logs"
    overrides = [*tiny, "latent_dim=3", "logger=none"]
    train(make_config(overrides=overrides, log_dir=log_dir))  # the good artifacts of this key
    folder = ArtifactKey("mnist", "elbo", 3, 0).folder(log_dir / "artifacts")
    before = snapshot(folder)
    assert {"vae.pt", "classifier.pt", "stats.pt", "summary.json", "samples.png"} <= before.keys()

    # lr=1e6 gives a NaN loss at the VAE's 2nd step (fp32 and bf16 alike; main published NaN weights).
    result = run_command("train", *overrides, "vae.lr=1e6", log_dir=log_dir, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        r"error: vae training diverged: the training loss became nan at epoch 1/1, step \d+/4 "
        r"\(global step \d+\); training stopped and nothing was published \(earlier artifacts of this "
        r"key are kept as they were\)\. Try a lower vae\.lr \(it is 1e\+06\).*\.",
        last,
    ), last
    assert snapshot(folder) == before  # byte for byte, summary.json and samples.png included
    assert sorted(p.name for p in folder.parent.iterdir()) == ["seed0"]  # no staging folder left behind


@pytest.mark.slow
def test_infinite_classifier_loss_stops_the_classifier_stage(make_config, tmp_path, tiny):
    from catvae.config.settings import pipeline_settings
    from catvae.training.stages import run_pipeline

    cfg = make_config(overrides=[*tiny, "logger=none", "classifier.model.lr=1e9"])
    with pytest.raises(
        DivergenceError,
        match=r"^classifier training diverged: the training loss became (inf|nan) at "
        r"epoch 1/1, step \d+/8 .* Try a lower classifier\.model\.lr \(it is 1e\+09\)",
    ):
        run_pipeline(pipeline_settings(cfg), [])
    folder = ArtifactKey("mnist", "elbo", 4, 0).folder(tmp_path / "logs" / "artifacts")
    # Staging starts once training is done: a stage that diverged left nothing under the artifacts.
    assert not folder.exists() and not folder.parent.exists()


def test_finite_losses_pass_and_the_first_bad_one_raises():
    import torch

    from catvae.training.divergence import DivergenceGuard

    class Trainer:  # what the message reads from Lightning's Trainer
        num_training_batches, current_epoch, max_epochs, global_step, precision, world_size = 10, 2, 5, 23, "32-true", 1

    guard = DivergenceGuard("vae")
    for value in (0.0, -3.5, 1e30):
        guard.on_train_batch_end(Trainer(), None, {"loss": torch.tensor(value)}, None, 0)
    guard.on_train_batch_end(Trainer(), None, None, None, 0)  # a skipped step has no loss
    with pytest.raises(DivergenceError) as caught:
        guard.on_train_batch_end(Trainer(), None, torch.tensor(float("-inf")), None, 6)
    assert str(caught.value).startswith(
        "vae training diverged: the training loss became -inf at epoch 3/5, step 7/10 (global step 23)"
    )
    assert str(caught.value).endswith("Try a lower vae.lr.")  # no module, no learning rate to quote


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_second_training_of_a_key_is_refused_while_the_first_runs(make_config, tmp_path, tiny):
    """Two trainings of one artifact key would resume from and publish over each other: while one
    holds the key's training lock, another exits 2 naming the key, and touches nothing."""
    from filelock import FileLock

    from catvae.config.keys import artifact_key
    from catvae.training.resume import checkpoint_folder, training_lock_file

    log_dir = tmp_path / "logs"
    cfg = make_config("train", tiny, log_dir)
    key = artifact_key(cfg)
    folder = checkpoint_folder(key, cfg.paths.checkpoints_dir)
    final = ArtifactKey("mnist", "elbo", 4, 0).folder(log_dir / "artifacts")
    final.mkdir(parents=True)
    (final / "vae.pt").write_bytes(b"published before")
    with FileLock(training_lock_file(key, cfg.paths.checkpoints_dir)):  # the first training, still running
        result = run_command("train", *tiny, log_dir=log_dir, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error: another training of data=mnist vae=elbo latent_dim=4 seed=0 is running" in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(final) == {"vae.pt": digest(b"published before")}
    assert not folder.exists()  # no checkpoint of the refused run
