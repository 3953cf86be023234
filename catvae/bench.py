"""``python -m catvae.bench``: where the time goes, measured side by side in one process.

The options and ``conf/train.yaml`` (the Trainer and batch sizes of ``catvae.train``) are read here; what
is measured, and how, is :mod:`catvae.training.benchmark`'s. Prints a table, writes ``bench.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytorch_lightning as pl
import torch

from catvae.config.registry import compose_config
from catvae.training.benchmark import PRECISIONS, accelerator, measure, parse_devices


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m catvae.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="auto", help="auto (the CPU, and CUDA when present), cpu, cuda, or cpu,cuda")
    parser.add_argument("--vae-images", type=int, default=55000, help="training images per VAE epoch")
    parser.add_argument("--classifier-images", type=int, default=10000, help="training images per classifier epoch")
    parser.add_argument("--vae-batch", type=int, default=None, help="default: data.batch_size of conf/train.yaml")
    parser.add_argument("--classifier-batch", type=int, default=None, help="default: classifier.batch_size")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per fit; the first is warm-up and not counted")
    parser.add_argument("--repeats", type=int, default=3, help="fits per contender, interleaved; runs of generate")
    parser.add_argument("--jobs", type=int, default=8, help="jobs of the search multirun")
    parser.add_argument("--samples-per-label", type=int, default=1000)
    parser.add_argument("--search-overrides", nargs="*", default=[], help="added to the search multirun (data.limit_test=300)")
    parser.add_argument("--scaling", action="store_true", help="also the cost tables (samples, latent_dim, batch size)")
    parser.add_argument("--scaling-samples", type=int, nargs="*", default=[100, 300, 1000, 3000, 5000])
    parser.add_argument("--scaling-dims", type=int, nargs="*", default=[2, 10, 20, 64])
    parser.add_argument("--scaling-batches", type=int, nargs="*", default=[64, 128, 256, 512, 1024])
    parser.add_argument("--out", type=Path, default=Path("logs") / "bench", help="folder for bench.json")
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    """Refuse options the benchmark cannot run with (job costs are spacings: two jobs at least)."""
    from catvae.config.validate import integer_at_least

    minimums = {"vae_images": 1, "classifier_images": 1, "epochs": 1, "repeats": 1, "jobs": 2, "samples_per_label": 2}
    minimums |= {option: 1 for option in ("vae_batch", "classifier_batch") if getattr(args, option) is not None}
    checks = [(option, getattr(args, option), least) for option, least in minimums.items()]
    lists = {"scaling_samples": 2, "scaling_dims": 1, "scaling_batches": 1}
    checks += [(option, value, least) for option, least in lists.items() for value in getattr(args, option)]
    for option, value, least in checks:
        integer_at_least(f"--{option.replace('_', '-')}", value, least)


def trainer_for(device: torch.device, precision: str, epochs: int, workdir: Path) -> pl.Trainer:
    """The Trainer ``catvae.train`` builds for a stage (``make_trainer``), on ``device`` at ``precision``, no logger."""
    from catvae.config.settings import run_config, trainer_settings
    from catvae.training.resume import training_fingerprint
    from catvae.training.stages import make_trainer

    device_and_precision = [f"trainer.accelerator={accelerator(device)}", f"trainer.precision={PRECISIONS[precision]}"]
    overrides = [*device_and_precision, "logger=none", f"paths.log_dir={workdir}", f"paths.output_dir={workdir}"]
    cfg = compose_config("train", overrides)
    fingerprint = training_fingerprint(run_config(cfg), "bench")
    return make_trainer(trainer_settings(cfg), "bench", epochs, [], workdir / "checkpoints", fingerprint)


def main(argv: list[str] | None = None) -> Path:
    from catvae.config.task import command_errors

    args = parse(argv)
    with command_errors():
        check_args(args)
        chosen = parse_devices(args.devices)  # auto: the CPU, and CUDA when present; refused when asked for and absent
        cfg = compose_config("train", [])
        args.vae_batch = args.vae_batch or int(cfg.data.batch_size)
        args.classifier_batch = args.classifier_batch or int(cfg.classifier.batch_size)
        return measure(args, chosen, trainer_for)


if __name__ == "__main__":
    main()
