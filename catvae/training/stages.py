"""The training pipeline's stages: VAE → classifier on reconstructions → class statistics → generator.

``catvae.train`` composes the config, builds its :class:`~catvae.training.settings.PipelineSettings`
(:func:`catvae.config.settings.pipeline_settings`) and calls :func:`run_pipeline`; each stage is a
function here, given the settings it uses, so tests can run it alone on a small slice.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import Logger

from catvae import artifacts
from catvae.core.files import write_json
from catvae.core.images import save_grid
from catvae.core.loggers import log_image, log_summary
from catvae.core.provenance import provenance
from catvae.core.targets import instantiate
from catvae.data.datamodule import ImageDataModule, TensorDataModule
from catvae.densities.base import ClassDensity, fit_densities, save_densities
from catvae.densities.diag import ClassLatentStats
from catvae.evaluation import views as views_module
from catvae.evaluation.evaluator import bf16_where, class_mean_check, reference_scores
from catvae.evaluation.sample_metrics import RealReference
from catvae.generators.gaussian import build_generator, generate_images, target_labels
from catvae.models.classifier import Classifier
from catvae.models.vae import VAE
from catvae.training import distributed, resume
from catvae.training.judge import ensure_judge, follow_judge
from catvae.training.settings import ClassifierSettings, Fitting, JudgeSettings, PipelineSettings, VAESettings
from catvae.training.trainer import make_trainer, test_trainer

log = logging.getLogger(__name__)


def make_vae(settings: VAESettings, image_shape: Sequence[int]) -> VAE:
    """The VAE of ``settings``: its networks (``vae.net``, a ``_target_`` node given ``latent_dim``,
    the data's ``image_shape`` and, when ``vae.conditional``, the ``data.num_classes`` classes whose
    one-hot label it feeds: the CVAE) and objective."""
    return VAE(
        settings.latent_dim,
        instantiate(settings.objective),
        copy.deepcopy(dict(settings.net)),
        list(image_shape),
        settings.lr,
        settings.schedule,
        num_classes=settings.num_classes,
    )


def fit_stage(
    fitting: Fitting, stage: str, module: pl.LightningModule, data: pl.LightningDataModule, epochs: int, loggers: list[Logger]
) -> None:
    """Fit ``module`` for ``stage`` with the run's Trainer, or continue it from its resume checkpoint
    (looked for once the Trainer exists, so its log lines come in the order they always did)."""
    fingerprint = fitting.fingerprints[stage]
    trainer = make_trainer(fitting.trainer, stage, epochs, loggers, fitting.checkpoint_dir, fingerprint)
    trainer.fit(
        module, datamodule=data, ckpt_path=resume.resume_point(fitting.checkpoint_dir, stage, epochs, fingerprint, fitting.resume)
    )


def train_vae(settings: VAESettings, fitting: Fitting, data: ImageDataModule, loggers: list[Logger]) -> tuple[VAE, dict]:
    """Fit the VAE (§3.3), or continue it from its checkpoint, and report its test-set terms in nats per image."""
    resume.seed_stage(fitting.seed, "vae")
    vae = make_vae(settings, data.image_shape)
    fit_stage(fitting, "vae", vae, data, settings.epochs, loggers)
    resume.seed_stage(fitting.seed, "vae-test")  # the test's noise, whether the VAE was trained here or restored
    (results,) = test_trainer(fitting.trainer, loggers).test(vae, datamodule=data, verbose=False)
    vae.to(fitting.trainer.device).eval()  # Lightning hands the module back on the CPU
    return vae, {name.removeprefix("vae/test/"): value for name, value in results.items()}


def reconstruction_data(vae: VAE, data: ImageDataModule, batch_size: int) -> TensorDataModule:
    """The classifier's data (§3.2): the VAE's reconstructions with the original labels, computed
    on the VAE's device (and kept there for the classifier's training)."""
    device = vae.device

    def recon(pair):
        labels = pair[1].to(device)
        return vae.reconstruct(pair[0].to(device), labels), labels

    test_x, test_y = data.test["test"]
    train = recon(data.train)  # computed once: trained on, and scored again in evaluation mode
    return TensorDataModule(
        train=train,
        val=recon(data.val) if data.val is not None else None,
        test={"train_recon": train, "test_recon": recon((test_x, test_y)), "test_real": (test_x.to(device), test_y.to(device))},
        batch_size=batch_size,
        eval_batch_size=data.eval_batch_size,
        seed=data.seed,
    )


def train_classifier(
    settings: ClassifierSettings, fitting: Fitting, vae: VAE, data: ImageDataModule, loggers: list[Logger], precision: str
) -> tuple[Classifier, dict]:
    """Fit Table 3's classifier on reconstructions (§3.4); accuracy on train/test reconstructions and real test images.

    Accuracies are taken with the ``precision`` that scores generated samples (``eval.precision``:
    bf16 where native; on MNIST it agrees with fp32 within 0.001, and 75,000 images cost ~3 s
    on a 2-core CPU, where Lightning's fp32 test loop at batch 1000 took ~18 s).
    """
    recon = reconstruction_data(vae, data, settings.batch_size)
    resume.seed_stage(fitting.seed, "classifier")
    classifier: Classifier = instantiate(settings.model, image_shape=list(data.image_shape))
    fit_stage(fitting, "classifier", classifier, recon, settings.epochs, loggers)
    net = classifier.net.to(vae.device).eval()  # Lightning hands the module back on the CPU
    if not distributed.is_global_zero():
        return classifier, {}  # scored by rank 0 alone, which writes the summary
    bf16 = bf16_where(precision, vae.device)
    scores = {f"acc_{name}": net.accuracy(images, labels, bf16) for name, (images, labels) in recon.test.items()}
    return classifier, scores


def fit_class_densities(
    nodes: Mapping[str, Mapping[str, Any]], vae: VAE, data: ImageDataModule
) -> tuple[dict[str, ClassDensity], dict]:
    """Every class density of ``nodes`` (``densities``, :mod:`catvae.densities`; diag is the paper's μ_y, σ_y),
    each built from its node, fitted on the encoder means of the training split, on the VAE's device,
    and the fit's report (seconds per density, GMM components, KDE bandwidths)."""
    images, labels = data.train
    codes = vae.encode_means(images.to(vae.device), labels.to(vae.device))  # a CVAE encodes with the labels
    plain_nodes = {name: copy.deepcopy(dict(node)) for name, node in nodes.items()}
    densities, report = fit_densities(codes, labels, data.num_classes, plain_nodes)
    return {name: density.to(vae.device) for name, density in densities.items()}, report


VIEW_CAPTIONS = {
    views_module.LATENT_FILE: "encoded test images by class, class densities as 1σ and 2σ ellipses (PCA plane when D > 2)",
    views_module.MANIFOLD_FILE: "decoded grid over the range of the test codes (PCA plane through their mean when D > 2)",
}


def latent_views(title: str, vae: VAE, data: ImageDataModule, density: ClassDensity, folder: Path) -> dict[str, Path]:
    """``latent.png`` and ``manifold.png`` (:mod:`catvae.evaluation.views`) from the encoded test images, with
    ``density`` drawn as the ellipses of its Gaussian components (a KDE or the prior has none: the
    diagonal statistics are drawn instead), under ``title``."""
    images, labels = data.test["test"]
    codes = vae.encode_means(images.to(vae.device), labels.to(vae.device))
    return views_module.write_views(codes, labels, density, data.class_names, vae.decoder, folder, title)


def judge_reference(
    judge_settings: JudgeSettings,
    run_config: Mapping[str, Any],
    sample_metrics: Sequence[Any],
    vae: VAE,
    data: ImageDataModule,
    loggers: list[Logger],
    bf16: bool,
) -> tuple[RealReference, dict]:
    """The judge (trained first if this dataset has none: :func:`catvae.training.judge.ensure_judge`),
    the real images it compares samples with, and the ``reference`` block of the summary: the
    judge's scores of the VAE's reconstructions of the test images, the decoder's bound, for the
    ``sample_metrics`` (``eval.sample_metrics``). ``run_config``: the command's, for the provenance
    of a judge trained here."""
    judge = ensure_judge(judge_settings, run_config, loggers, data)
    test_images, test_labels = (t.to(vae.device) for t in data.test["test"])
    reference = RealReference(judge, test_images, test_labels, data.train[0], data.train[1], bf16, list(sample_metrics))
    block = {
        "what": "the VAE's reconstructions of the real test images, scored by the judge against those images",
        "judge": {"seed": judge_settings.seed, "test_real_accuracy": judge.accuracy(test_images, test_labels, bf16)},
        **reference_scores(reference, vae.reconstruct(test_images, test_labels), test_labels, list(sample_metrics)),
    }
    return reference, block


def run_pipeline(settings: PipelineSettings, loggers: list[Logger]) -> Path | None:
    """Train and evaluate everything for ``settings`` (of a config checked by :func:`catvae.config.validate.validate_train`);
    returns the published ``summary.json``. One training per artifact key at a time
    (:func:`catvae.training.resume.training_lock`): a second one is refused before it touches anything.
    """
    with resume.training_lock(settings.key, settings.checkpoints_dir):
        return train_and_publish(settings, loggers)


def train_and_publish(settings: PipelineSettings, loggers: list[Logger]) -> Path | None:
    """:func:`run_pipeline`'s stages, run while this process holds the key's training lock.

    Under DDP (``trainer=ddp``, :mod:`catvae.training.distributed`) every process runs this: all take
    part in the training stages (the VAE's fit and test, the classifier's fit, the judge's fit when
    it is trained), then the others return None and rank 0 alone evaluates and publishes. The
    stages after training are cheap next to training and have nothing to split across processes,
    and only one process may write the artifacts, so running them once is both correct and cheapest.
    """
    key = settings.key
    final = key.folder(settings.artifacts_dir)
    output_dir = settings.output_dir
    fitting = settings.fitting
    checkpoints = fitting.checkpoint_dir
    if not fitting.resume:
        resume.discard(checkpoints, "resume=false")
    pl.seed_everything(fitting.seed, workers=True, verbose=False)
    device = fitting.trainer.device
    if device.type == "cuda":
        # Data, models and every stage live on the GPU; the CPU only drives it. One intra-op
        # thread keeps idle OpenMP workers from spinning on the host's cores.
        torch.set_num_threads(1)
    distributed.quiet_console()
    started = time.perf_counter()
    # The data first: a dataset refused here leaves no trace under the artifacts folder.
    data: ImageDataModule = instantiate(settings.data)
    data.setup()
    log.info("VAE (%s, D=%d): %d training images, %d epochs", key.vae, key.latent_dim, len(data.train[0]), settings.vae.epochs)
    vae, vae_test = train_vae(settings.vae, fitting, data, loggers)
    vae_seconds = time.perf_counter() - started
    log.info("VAE test: %s", {k: round(v, 3) for k, v in vae_test.items()})

    evaluation = settings.evaluation
    classifier, clf_scores = train_classifier(settings.classifier, fitting, vae, data, loggers, evaluation.precision)
    classifier_seconds = time.perf_counter() - started - vae_seconds
    if not distributed.is_global_zero():
        follow_judge(settings.judge, settings.config, loggers, data)  # the judge's fit, if rank 0 trains one, needs every process
        return None

    log.info("classifier: %s", {k: round(v, 4) for k, v in clf_scores.items()})
    # Staged once the training stages are done: only what rank 0 writes goes in.
    with artifacts.staged_folder(final) as stage:
        densities, density_fit = fit_class_densities(settings.densities, vae, data)
        log.info("class densities fitted: %s", density_fit)
        stats = densities["diag"]
        assert isinstance(stats, ClassLatentStats)
        density = densities[settings.latent]  # the one this run evaluates; all are published
        net = classifier.net
        bf16 = bf16_where(evaluation.precision, vae.device)
        mean_check = class_mean_check(density, vae.decoder, net, bf16)
        reference, reference_block = judge_reference(
            settings.judge, settings.config, evaluation.sample_metric_groups, vae, data, loggers, bf16
        )
        generator = build_generator(settings.generator)
        report = evaluation.score(generator, density, vae.decoder, net, reference)
        log.info(
            "generator %s on %s: accuracy %.4f (judge %.4f), cos_pairwise %.4f, cos_to_mean %.4f, objective %.4f",
            generator.params(density),
            density.name,
            report["accuracy"],
            report["judge_accuracy"],
            report["cos_pairwise"],
            report["cos_to_mean"],
            report["objective"],
        )

        artifacts.save_vae(vae.encoder, vae.decoder, stage / artifacts.VAE_FILE)
        artifacts.save_classifier(net, stage / artifacts.CLASSIFIER_FILE)
        stats.save(stage / artifacts.STATS_FILE)
        save_densities(densities, stage / artifacts.DENSITIES_FILE)
        columns = settings.grid_per_label
        labels = target_labels(density.num_classes, columns)
        grid = save_grid(
            generate_images(generator, density, vae.decoder, labels, evaluation.seed),
            stage / artifacts.SAMPLES_FILE,
            columns=columns,
            image_shape=data.image_shape,
            row_labels=data.class_names,
        )
        views_started = time.perf_counter()
        title = f"{key.data} {key.vae}-{key.latent_dim}: test codes, class densities"
        views = latent_views(title, vae, data, density if density.gaussian_components() is not None else stats, stage)
        views_seconds = time.perf_counter() - views_started
        summary = {
            "key": dataclasses.asdict(key),
            "vae_test": vae_test,
            "classifier": clf_scores,
            "class_means": mean_check,
            "latent": density.name,
            "densities": density_fit,
            "generator": report,
            "reference": reference_block,
            "timing_s": {
                "vae": round(vae_seconds, 1),
                "classifier": round(classifier_seconds, 1),
                "views": round(views_seconds, 1),
                "total": round(time.perf_counter() - started, 1),
            },
            "artifacts": {name: str(final / name) for name in (*artifacts.REQUIRED, artifacts.SAMPLES_FILE, *views)},
            "run_dir": str(output_dir),
            "distributed": distributed.summary_block(
                fitting.trainer, {"vae": settings.data_batch_size, "classifier": settings.classifier.batch_size}
            ),
            "config": copy.deepcopy(dict(settings.config)),
            "provenance": provenance(settings.config, device),
        }
        write_json(summary, stage / artifacts.SUMMARY_FILE)
    resume.discard(checkpoints, "published")  # resuming is for interrupted runs
    log_summary(loggers, {k: summary[k] for k in ("vae_test", "classifier", "generator", "reference", "timing_s")})
    log_image(loggers, "samples", final / grid.name, f"{generator.params(density)} on {density.name}, one row per label")
    for name, caption in VIEW_CAPTIONS.items():
        if name in views:
            log_image(loggers, Path(name).stem, final / name, caption)
    return final / artifacts.SUMMARY_FILE
