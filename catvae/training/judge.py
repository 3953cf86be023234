"""The independent judge (issue 8): Table 3's classifier trained on *real* training images.

The paper's classifier learns from one VAE's reconstructions, so it judges that VAE's samples by
the VAE's own blur. The judge is trained once per (dataset, judge seed) on the real training split
and shared by every VAE of that dataset; it scores ``judge_accuracy`` and supplies the feature
space of the sample metrics (:mod:`catvae.evaluation.sample_metrics`). ``python -m catvae.judge`` trains
it, and ``catvae.train`` does when it is missing. It is published in
``{artifacts_dir}/{data}/judge/seed{seed}/`` (``judge.pt``, ``summary.json``), staged and swapped
in whole like the VAEs' artifacts, and resumes from its own checkpoint when killed.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.loggers import Logger

from catvae import artifacts
from catvae.core.files import write_json
from catvae.core.provenance import provenance
from catvae.core.targets import instantiate
from catvae.data.datamodule import ImageDataModule, TensorDataModule
from catvae.evaluation.evaluator import bf16_where, reference_scores
from catvae.evaluation.sample_metrics import METRIC_GROUPS, RealReference
from catvae.models.classifier import Classifier
from catvae.models.networks import ClassifierNet
from catvae.training import distributed, resume
from catvae.training.settings import JudgeSettings
from catvae.training.trainer import make_trainer

log = logging.getLogger(__name__)

REFERENCE_SPLIT_SEED = 0  # which half of the test set plays "samples" in the judge's reference metrics


def judge_exists(settings: JudgeSettings) -> bool:
    """Whether the judge of ``settings``' dataset and seed is published."""
    return (artifacts.judge_folder(settings.artifacts_dir, settings.data_name, settings.seed) / artifacts.JUDGE_FILE).is_file()


def train_judge(
    settings: JudgeSettings, run_config: Mapping[str, Any], loggers: list[Logger], data: ImageDataModule | None = None
) -> Path | None:
    """Train, score and publish the judge of ``settings``' dataset and ``judge.seed``; returns its ``summary.json``.

    ``run_config``: the command's resolved config (plain containers), for the summary's provenance. ``data``: the data
    module already loaded by the caller, reused when its split seed is the judge's.
    Under DDP every process takes part in the fit; rank 0 alone scores and publishes, the others
    return None.
    """
    seed, name = settings.seed, settings.data_name
    started = time.perf_counter()
    if data is None or int(data.seed) != seed:
        data = instantiate(settings.data)
        data.setup()
    assert data is not None
    final = artifacts.judge_folder(settings.artifacts_dir, name, seed)
    checkpoints = final.relative_to(Path(settings.artifacts_dir))
    checkpoints = Path(settings.checkpoints_dir) / checkpoints
    if not settings.resume:
        resume.discard(checkpoints, "resume=false")
    device = settings.trainer.device
    log.info("judge (%s, seed %d): %d real training images, %d epochs", name, seed, len(data.train[0]), settings.epochs)
    real = TensorDataModule(
        train=data.train,
        val=data.val,
        test={},
        batch_size=settings.batch_size,
        eval_batch_size=data.eval_batch_size,
        seed=seed,
    )
    resume.seed_stage(seed, "judge")
    module: Classifier = instantiate(settings.model, image_shape=list(data.image_shape))
    epochs = settings.epochs
    make_trainer(settings.trainer, "judge", epochs, loggers, checkpoints, settings.fingerprint).fit(
        module,
        datamodule=real,
        ckpt_path=resume.resume_point(checkpoints, "judge", epochs, settings.fingerprint, settings.resume),
    )
    if not distributed.is_global_zero():
        return None
    net: ClassifierNet = module.net.to(device).eval()
    train_seconds = time.perf_counter() - started
    with artifacts.staged_folder(final) as stage:
        bf16 = bf16_where(settings.precision, device)
        test_images, test_labels = (t.to(device) for t in data.test["test"])
        accuracy = net.accuracy(test_images, test_labels, bf16)
        log.info("judge: accuracy %.4f on %d real test images", accuracy, len(test_labels))
        summary = {
            "data": name,
            "seed": seed,
            "train_images": len(data.train[0]),  # a judge of a quick run (data.limit_train) is replaced by a full one
            "accuracy": {
                "test_real": accuracy,
                "train_real": net.accuracy(data.train[0].to(device), data.train[1].to(device), bf16),
            },
            "reference": real_reference(net, data, bf16),
            "timing_s": {"train": round(train_seconds, 1), "total": round(time.perf_counter() - started, 1)},
            "artifacts": {artifacts.JUDGE_FILE: str(final / artifacts.JUDGE_FILE)},
            "command": artifacts.judge_command(name, seed),
            "distributed": distributed.summary_block(settings.trainer, {"judge": settings.batch_size}),
            "config": copy.deepcopy(dict(settings.config)),
            "provenance": provenance(run_config, device),
        }
        artifacts.save_judge(net.cpu(), stage / artifacts.JUDGE_FILE)
        write_json(summary, stage / artifacts.SUMMARY_FILE)
    resume.discard(checkpoints, "published")
    return final / artifacts.SUMMARY_FILE


def real_reference(judge: ClassifierNet, data: ImageDataModule, bf16: bool) -> dict:
    """The REFERENCE scores of real test images, measured like generated samples: one half of the
    test set (drawn with :data:`REFERENCE_SPLIT_SEED`) scored against the other half (FID,
    precision/recall, density/coverage), its judge accuracy, cos_pairwise (eq. 5 per label,
    averaged) and its distances to the training images (near_copies ≈ 1 % by construction).
    Half against half: FID is biased upward at smaller sample counts, so these are slightly
    pessimistic bounds for 10,000 generated samples against the whole test set."""
    device = next(judge.parameters()).device
    images, labels = data.test["test"]
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(REFERENCE_SPLIT_SEED))
    half = len(order) // 2
    samples, real = order[:half], order[half:]
    reference = RealReference(judge, images[real], labels[real], data.train[0], data.train[1], bf16)
    return {
        "what": "half of the real test images against the other half (features), and against the training images (novelty)",
        **reference_scores(reference, images[samples].to(device), labels[samples].to(device), METRIC_GROUPS),
    }


def judge_train_images(settings: JudgeSettings) -> int | None:
    """How many real training images the published judge of ``settings`` saw (None when its summary does not say)."""
    folder = artifacts.judge_folder(settings.artifacts_dir, settings.data_name, settings.seed)
    try:
        count = json.loads((folder / artifacts.SUMMARY_FILE).read_text()).get("train_images")
    except (OSError, ValueError):
        return None
    return count if isinstance(count, int) else None


def judge_to_train(settings: JudgeSettings, available: int) -> str | None:
    """Why ``catvae.train`` must train the judge first (None when the published one will do): it is
    missing, or it saw fewer training images than this run has (a judge left by a quick
    ``data.limit_train`` run must not judge full-data models). Under DDP this is rank 0's answer on
    every rank: they all take part in the judge's fit or none does."""
    reason = None
    if not judge_exists(settings):
        reason = f"no judge for data={settings.data_name} seed={settings.seed} yet: training it first"
    else:
        seen = judge_train_images(settings)
        if seen is not None and seen < available:
            reason = (
                f"the judge of data={settings.data_name} saw {seen} training images, this run has {available}: training it again"
            )
    return distributed.broadcast(reason)


def ensure_judge(
    settings: JudgeSettings, run_config: Mapping[str, Any], loggers: list[Logger], data: ImageDataModule
) -> ClassifierNet:
    """The judge ``catvae.train`` scores with: trained here first if :func:`judge_to_train` says so
    (it is reused across VAEs), then loaded."""
    reason = judge_to_train(settings, len(data.train[0]))
    if reason is not None:
        log.info("%s", reason)
        train_judge(settings, run_config, loggers, data)
    return artifacts.load_judge(settings.data_name, settings.seed, settings.artifacts_dir, settings.trainer.device)


def follow_judge(settings: JudgeSettings, run_config: Mapping[str, Any], loggers: list[Logger], data: ImageDataModule) -> None:
    """On a DDP rank above 0: take part in the judge's fit when rank 0 (:func:`ensure_judge`) trains it."""
    if judge_to_train(settings, len(data.train[0])) is not None:
        train_judge(settings, run_config, loggers, data)
