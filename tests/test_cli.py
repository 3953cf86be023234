"""The commands as a user runs them, from any folder: a bad input gets one message naming key,
value and what is allowed, exit status 2, no traceback, and no artifact is created or changed."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HAS_GPU = __import__("torch").cuda.is_available()


def run(module: str, *args: str, log_dir: Path, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m catvae.<module> ARGS`` in ``cwd`` (not the repository: commands work from any
    folder); PYTHONPATH and the rest of the environment pass through."""
    cwd.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "WANDB_MODE": "offline", "CATVAE_LOG_DIR": str(log_dir)}
    return subprocess.run(
        [sys.executable, "-m", f"catvae.{module}", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its bytes (None for a folder)."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def assert_refused(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"error: {message}" in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.count("error: ") == 1, result.stderr


@pytest.fixture
def artifacts_copy(trained, tmp_path) -> Path:
    """A log folder holding a copy of the tiny trained artifacts (mnist/elbo-4/seed0)."""
    log_dir = tmp_path / "logs"
    shutil.copytree(trained["log_dir"] / "artifacts", log_dir / "artifacts")
    return log_dir


UNKNOWN_KEY = (
    "vae.lrr=1 is not allowed: 'vae' has no key 'lrr'; "
    "its keys are name, epochs, lr, schedule, hidden, objective, arch, channels, kernel, conditional"
)
# More refusals, checked in-process (same messages, no subprocess each): tests/test_validate.py.
TRAIN_CASES = [
    (["vae.lr=-1"], "vae.lr=-1.0 is not allowed: a number > 0"),
    (["classifier.model.lr=0"], "classifier.model.lr=0.0 is not allowed: a number > 0"),
    (["vae.epochs=0"], "vae.epochs=0 is not allowed: an integer >= 1"),
    (["vae.epochs=1.5"], "vae.epochs=1.5 is not allowed: an integer"),
    (["latent_dim=abc"], "latent_dim='abc' is not allowed: an integer"),
    (["latent_dim=0"], "latent_dim=0 is not allowed: an integer >= 1"),
    (["vae.lrr=1"], UNKNOWN_KEY),
    (["+vae.lrr=1"], UNKNOWN_KEY),
    (["vae=vq"], "vae='vq' is not allowed: one of cvae, elbo, elbo_conv, mmd, mmd_conv"),
    (["vae=mmd", "vae.objective.weight=-1"], "vae.objective.weight=-1 is not allowed: a number >= 0"),
    (["data.batch_size=0"], "data.batch_size=0 is not allowed: an integer >= 1"),
    (["data.val_size=1.0"], "data.val_size=1.0 is not allowed: a fraction in [0, 1) of the training images, or a whole number"),
    (["eval.samples_per_label=1"], "eval.samples_per_label=1 is not allowed: an integer >= 2 (pairs are needed)"),
    (["eval.precision=fp8"], "eval.precision='fp8' is not allowed: one of auto, 32, bf16"),
    (["vae.schedule=cosine"], "vae.schedule='cosine' is not allowed: one of constant, onecycle"),
    (["trainer.accelerator=tpu"], "trainer.accelerator='tpu' is not allowed: one of auto, cpu, gpu, cuda"),
    (["generator.theta=-0.5"], "generator.theta=-0.5 is not allowed: a number >= 0 (simple, latent_dim=4)"),
    (["generator.n=0"], "generator.n=0 is not allowed: an integer >= 1"),
    (
        ["generator=medium1", "generator.theta=[0.1,0.2,0.3]"],
        "generator.theta=[0.1, 0.2, 0.3] is not allowed: a number or a list of 4 numbers >= 0 (medium1, latent_dim=4)",
    ),
    (
        ["generator=medium2", "generator.theta=[[0.1,0.2,0.3,0.4],[0.1,0.2,0.3,0.4]]"],
        "generator.theta=[[0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]] is not allowed: "
        "a number or a 10×4 nested list of numbers >= 0 "
        "(medium2, latent_dim=4, 10 classes)",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), TRAIN_CASES, ids=[" ".join(case[0]) for case in TRAIN_CASES])
def test_train_rejects_bad_input(artifacts_copy, tmp_path, tiny, overrides, message):
    before = snapshot(artifacts_copy / "artifacts")
    result = run("train", *tiny, "logger=csv", *overrides, log_dir=artifacts_copy, cwd=tmp_path / "cwd")
    assert_refused(result, message)
    assert snapshot(artifacts_copy / "artifacts") == before  # nothing added, nothing changed
    assert not list((tmp_path / "cwd").iterdir())


def test_train_refusal_creates_no_artifacts_folder(tmp_path):
    result = run("train", "vae.lr=0", log_dir=tmp_path / "logs", cwd=tmp_path / "cwd")
    assert_refused(result, "vae.lr=0.0 is not allowed: a number > 0")
    assert not (tmp_path / "logs" / "artifacts").exists()


def test_a_multirun_refuses_its_shared_config_before_any_job(tmp_path):
    result = run("train", "-m", "vae.lr=-1", "latent_dim=2,3", log_dir=tmp_path / "logs", cwd=tmp_path / "cwd")
    assert_refused(result, "vae.lr=-1.0 is not allowed: a number > 0")
    assert "Launching" not in result.stdout + result.stderr
    assert not (tmp_path / "logs" / "artifacts").exists()


@pytest.mark.skipif(HAS_GPU, reason="this machine has a GPU")
@pytest.mark.parametrize(
    ("module", "override", "key"),
    [("train", "trainer=gpu", "trainer.accelerator"), ("generate", "device=gpu", "device"), ("search", "device=gpu", "device")],
)
def test_gpu_requested_without_a_gpu(artifacts_copy, tmp_path, module, override, key):
    before = snapshot(artifacts_copy / "artifacts")
    result = run(module, "latent_dim=4", override, log_dir=artifacts_copy, cwd=tmp_path / "cwd")
    assert_refused(result, f"{key}='gpu' is not allowed: auto or cpu: this machine has no CUDA GPU")
    assert snapshot(artifacts_copy / "artifacts") == before


def test_generate_without_artifacts_names_the_train_command(tmp_path):
    result = run("generate", "vae=mmd", "latent_dim=10", "label=7", log_dir=tmp_path / "logs", cwd=tmp_path / "cwd")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "python -m catvae.train data=mnist vae=mmd latent_dim=10 seed=0" in result.stderr
    assert not (tmp_path / "logs" / "artifacts").exists()


GENERATE_CASES = [
    (["label=12"], 'label=12 is not allowed: "all" or an integer label from 0 to 9'),
    (["label=seven"], "label='seven' is not allowed: \"all\" or an integer label from 0 to 9"),
    (["label=-1"], 'label=-1 is not allowed: "all" or an integer label from 0 to 9'),
    (["num=0"], "num=0 is not allowed: an integer >= 1"),
    (["num=abc"], "num='abc' is not allowed: an integer"),
    (["out=x.txt"], "out='x.txt' is not allowed: null or a file name ending in .npz"),
    (["png=x.jpg"], "png='x.jpg' is not allowed: null or a file name ending in .png"),
    (
        ["generator=medium1", "generator.theta=[0.5]"],
        "generator.theta=[0.5] is not allowed: a number or a list of 4 numbers >= 0 (medium1, latent_dim=4)",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), GENERATE_CASES, ids=[" ".join(case[0]) for case in GENERATE_CASES])
def test_generate_rejects_bad_input(artifacts_copy, tmp_path, overrides, message):
    before = snapshot(artifacts_copy / "artifacts")
    result = run("generate", "latent_dim=4", *overrides, log_dir=artifacts_copy, cwd=tmp_path / "cwd")
    assert_refused(result, message)
    assert snapshot(artifacts_copy / "artifacts") == before
    assert not list((tmp_path / "cwd").iterdir())  # no x.txt, x.png, …


def test_generate_works_from_any_folder(artifacts_copy, tmp_path):
    import numpy as np

    cwd = tmp_path / "elsewhere"
    result = run("generate", "latent_dim=4", "label=3", "num=5", "out=samples.npz", log_dir=artifacts_copy, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(cwd / "samples.npz") as saved:
        assert saved["images"].shape == (5, 28, 28) and saved["labels"].tolist() == [3] * 5
    assert (cwd / "samples.png").is_file()


SEARCH_CASES = [
    (["-m", "eval.samples_per_label=1"], "eval.samples_per_label=1 is not allowed: an integer >= 2 (pairs are needed)"),
    (
        ["-m", "search=optuna", "search.trial_samples_per_label=1"],
        "search.trial_samples_per_label=1 is not allowed: null or an integer >= 2 (pairs are needed)",
    ),
    (["-m", "search=optuna", "search.rescore_top=-1"], "search.rescore_top=-1 is not allowed: an integer >= 0"),
    (["-m", "search=optuna", "search.theta_step=0"], "search.theta_step=0.0 is not allowed: null or a number > 0"),
    (["-m", "search=optuna", "hydra.sweeper.n_trials=abc"], "hydra.sweeper.n_trials='abc' is not allowed: an integer"),
    (
        ["-m", "generator=medium2", "search=optuna", "generator.theta=[[0.5]]"],
        "generator.theta=[[0.5]] is not allowed: a number or a 10×4 nested list of numbers >= 0 "
        "(medium2, latent_dim=4, 10 classes)",
    ),
    (["generator.theta=-0.5"], "generator.theta=-0.5 is not allowed: a number >= 0 (simple, latent_dim=4)"),
    (
        ["generator=medium1", "generator.theta=[0.5]"],
        "generator.theta=[0.5] is not allowed: a number or a list of 4 numbers >= 0 (medium1, latent_dim=4)",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), SEARCH_CASES, ids=[" ".join(case[0]) for case in SEARCH_CASES])
def test_search_rejects_bad_input(artifacts_copy, tmp_path, overrides, message):
    before = snapshot(artifacts_copy / "artifacts")
    result = run(
        "search",
        "latent_dim=4",
        "eval.samples_per_label=6",
        "logger=none",
        *overrides,
        log_dir=artifacts_copy,
        cwd=tmp_path / "cwd",
    )
    assert_refused(result, message)
    assert snapshot(artifacts_copy / "artifacts") == before
    assert not (artifacts_copy / "search" / "optuna.db").exists()  # no Optuna trial was started
    assert not list((artifacts_copy / "search").glob("multiruns/*/0"))  # nor any job


def test_a_bad_swept_value_stops_the_sweep_at_its_job(artifacts_copy, tmp_path):
    """The shared config (W&B logger and all) passes; job 0 runs and closes its W&B run; job 1 is refused."""
    result = run(
        "search",
        "-m",
        "latent_dim=4",
        "eval.samples_per_label=6",
        "generator.theta=0.2,-0.5",
        log_dir=artifacts_copy,
        cwd=tmp_path / "cwd",
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "error: generator.theta=-0.5 is not allowed: a number >= 0 (simple, latent_dim=4)" in result.stderr
    (sweep,) = (artifacts_copy / "search" / "multiruns").iterdir()
    assert (sweep / "0" / "result.json").is_file() and not (sweep / "1" / "result.json").exists()
    assert list((sweep / "0" / "wandb").glob("offline-run-*/run-*.wandb")) and not (sweep / "1" / "wandb").exists()


def test_report_refuses_a_folder_that_is_not_a_sweep(tmp_path):
    not_a_sweep = tmp_path / "not_a_sweep"
    not_a_sweep.mkdir()
    result = run("report", str(not_a_sweep), "--out", str(tmp_path / "report"), log_dir=tmp_path / "logs", cwd=tmp_path / "cwd")
    assert_refused(
        result,
        f"SWEEP_DIR='{not_a_sweep}' is not allowed: a finished `python -m catvae.search -m` folder "
        "(this one has no trials.csv and best.json)",
    )
    assert not (tmp_path / "report").exists()
    result = run("report", "/not/a/sweep", log_dir=tmp_path / "logs", cwd=tmp_path / "cwd")
    assert_refused(result, "SWEEP_DIR='/not/a/sweep' is not allowed")
    assert not list((tmp_path / "cwd").iterdir())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trials", "0"], "--trials=0 is not allowed: an integer >= 1"),
        (["--samples-per-label", "1"], "--samples-per-label=1 is not allowed: an integer >= 2"),
        (["--extra", "latent_dim=abc"], "latent_dim='abc' is not allowed: an integer"),
    ],
)
def test_paper_rejects_bad_arguments(tmp_path, args, message):
    result = run("paper", "--log-dir", str(tmp_path / "logs"), *args, log_dir=tmp_path / "logs", cwd=tmp_path / "cwd")
    assert_refused(result, message)
    assert not (tmp_path / "logs" / "artifacts").exists() and not list((tmp_path / "cwd").iterdir())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--jobs", "1"], "--jobs=1 is not allowed: an integer >= 2"),
        (["--devices", "tpu"], "--devices='tpu' is not allowed: auto, cpu, cuda, or cpu,cuda"),
    ]
    + (
        [] if HAS_GPU else [(["--devices", "cuda"], "--devices='cuda' is not allowed: auto or cpu: this machine has no CUDA GPU")]
    ),
)
def test_bench_rejects_bad_arguments(tmp_path, args, message):
    result = run("bench", "--out", str(tmp_path / "bench"), *args, log_dir=tmp_path / "logs", cwd=tmp_path / "cwd")
    assert_refused(result, message)
    assert not (tmp_path / "bench").exists()


def test_generate_does_not_import_wandb_or_lightning(tmp_path):
    code = (
        "import sys; from catvae.generate import generate; "
        "print(sorted(m for m in ('wandb', 'pytorch_lightning', 'optuna') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.stdout.strip() == "[]", result.stderr


def test_an_optuna_sweep_of_medium2_runs_on_the_typed_config(artifacts_copy, tmp_path):
    """``+generator.theta.y.d=…`` overrides from the Optuna search space pass the schema and validate."""
    import json

    import optuna

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    result = run(
        "search",
        "-m",
        "latent_dim=4",
        "eval.samples_per_label=6",
        "logger=none",
        "generator=medium2",
        "search=optuna",
        f"search.storage_url={storage}",
        "hydra.sweeper.study_name=t",
        "hydra.sweeper.n_trials=2",
        "search.sampler_seed=0",
        "search.trial_samples_per_label=null",
        log_dir=artifacts_copy,
        cwd=tmp_path / "cwd",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="t", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"] and len(study.trials[0].params) == 41
    (sweep,) = (artifacts_copy / "search" / "multiruns").iterdir()
    for trial in study.trials:
        theta = json.loads((sweep / str(trial.number) / "result.json").read_text())["theta"]
        assert [theta[y][d] for y in range(10) for d in range(4)] == pytest.approx(
            [trial.params[f"+generator.theta.{y}.{d}"] for y in range(10) for d in range(4)]
        )
