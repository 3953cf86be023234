"""The commands as a user runs them, from any folder: a bad input gets one message naming key,
value and what is allowed, exit status 2, no traceback, and no artifact is created or changed.

Each command's refusals run in-process (``call_command``: its ``main`` with the same arguments, no
interpreter start); a few of each command's also as real processes (marked ``subprocess``), which
show the exit status and the lone ``error:`` line end to end."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import assert_refused, run_command, snapshot

HAS_GPU = __import__("torch").cuda.is_available()


def refuse(call_command, in_subprocess: bool, module: str, *args: str, log_dir: Path, cwd: Path, message: str) -> None:
    """``python -m catvae.<module> ARGS`` is refused with ``message``: exit status 2, one ``error:``
    line and no traceback; as a real process when ``in_subprocess``, else in-process."""
    if in_subprocess:
        assert_refused(run_command(module, *args, log_dir=log_dir, cwd=cwd), message)
        return
    code, stderr = call_command(module, *args, log_dir=log_dir, cwd=cwd)
    assert code == 2, stderr[-3000:]
    assert f"error: {message}" in stderr, stderr[-3000:]
    assert "Traceback" not in stderr
    assert stderr.count("error: ") == 1, stderr


def cases(table: list, in_subprocess: set[str]) -> list:
    """``table``'s (overrides, message) as parameters (id: the overrides) with an ``in_subprocess``
    flag, true (and marked ``subprocess``) for the ids in ``in_subprocess``."""
    found = {" ".join(overrides) for overrides, _ in table}
    assert in_subprocess <= found, in_subprocess - found
    return [
        pytest.param(
            overrides, message, name in in_subprocess, id=name, marks=[pytest.mark.subprocess] if name in in_subprocess else []
        )
        for overrides, message in table
        for name in [" ".join(overrides)]
    ]


@pytest.fixture
def artifacts_copy(trained, tmp_path) -> Path:
    """A log folder holding a copy of the tiny trained artifacts (mnist/elbo-4/seed0)."""
    log_dir = tmp_path / "logs"
    shutil.copytree(trained["log_dir"] / "artifacts", log_dir / "artifacts")
    return log_dir


PLACEHOLDERS = [
    "mnist/elbo-4/seed0/vae.pt",
    "mnist/elbo-4/seed0/classifier.pt",
    "mnist/elbo-4/seed0/stats.pt",
    "mnist/elbo-4/seed0/densities.pt",
    "mnist/elbo-4/seed0/summary.json",
    "mnist/elbo-4/seed0/samples.png",
    "mnist/judge/seed0/judge.pt",
    "mnist/judge/seed0/summary.json",
]


@pytest.fixture
def refusal_logs(request, tmp_path, in_subprocess) -> Path:
    """The log folder a refused command runs on. For a real process a copy of the tiny trained
    artifacts (the command as a user meets it); in-process the artifacts' files with placeholder
    bytes: a refusal reads none of them, and the snapshot shows none is touched (no training needed)."""
    if in_subprocess:
        return request.getfixturevalue("artifacts_copy")
    log_dir = tmp_path / "logs"
    for name in PLACEHOLDERS:
        (log_dir / "artifacts" / name).parent.mkdir(parents=True, exist_ok=True)
        (log_dir / "artifacts" / name).write_text(f"placeholder {name}")
    return log_dir


UNKNOWN_KEY = (
    "vae.lrr=1 is not allowed: 'vae' has no key 'lrr'; its keys are name, epochs, lr, schedule, net, objective, conditional"
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
    # train fits densities.NAME: an option of latent alone was silently ignored (found after the densities moved)
    (
        ["latent=gmm", "latent.components=[4]"],
        "latent.components='[4]' is not allowed: set densities.gmm.components instead: "
        "train fits the nodes of densities (latent picks one)",
    ),
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


# As real processes: one refused by validate, one by Hydra's composition (an unknown key).
@pytest.mark.parametrize(("overrides", "message", "in_subprocess"), cases(TRAIN_CASES, {"vae.lr=-1", "vae.lrr=1"}))
def test_train_rejects_bad_input(refusal_logs, tmp_path, tiny, call_command, overrides, message, in_subprocess):
    before = snapshot(refusal_logs / "artifacts", folders=True)
    args = [*tiny, "logger=csv", *overrides]
    refuse(call_command, in_subprocess, "train", *args, log_dir=refusal_logs, cwd=tmp_path / "cwd", message=message)
    assert snapshot(refusal_logs / "artifacts", folders=True) == before  # nothing added, nothing changed
    assert not list((tmp_path / "cwd").iterdir())


@pytest.mark.subprocess
def test_train_refusal_creates_no_artifacts_folder(tmp_path):
    result = run_command("train", "vae.lr=0", log_dir=tmp_path / "logs", cwd=tmp_path / "cwd")
    assert_refused(result, "vae.lr=0.0 is not allowed: a number > 0")
    assert not (tmp_path / "logs" / "artifacts").exists()


@pytest.mark.subprocess
def test_a_multirun_refuses_its_shared_config_before_any_job(tmp_path):
    result = run_command("train", "-m", "vae.lr=-1", "latent_dim=2,3", log_dir=tmp_path / "logs", cwd=tmp_path / "cwd")
    assert_refused(result, "vae.lr=-1.0 is not allowed: a number > 0")
    assert "Launching" not in result.stdout + result.stderr
    assert not (tmp_path / "logs" / "artifacts").exists()


@pytest.mark.skipif(HAS_GPU, reason="this machine has a GPU")
@pytest.mark.parametrize(
    ("module", "override", "key", "in_subprocess"),
    [
        pytest.param("train", "trainer=gpu", "trainer.accelerator", True, marks=pytest.mark.subprocess),
        ("generate", "device=gpu", "device", False),
        ("search", "device=gpu", "device", False),
    ],
)
def test_gpu_requested_without_a_gpu(refusal_logs, tmp_path, call_command, module, override, key, in_subprocess):
    before = snapshot(refusal_logs / "artifacts", folders=True)
    message = f"{key}='gpu' is not allowed: auto or cpu: this machine has no CUDA GPU"
    refuse(
        call_command, in_subprocess, module, "latent_dim=4", override, log_dir=refusal_logs, cwd=tmp_path / "cwd", message=message
    )
    assert snapshot(refusal_logs / "artifacts", folders=True) == before


@pytest.mark.subprocess
def test_generate_without_artifacts_names_the_train_command(tmp_path):
    result = run_command("generate", "vae=mmd", "latent_dim=10", "label=7", log_dir=tmp_path / "logs", cwd=tmp_path / "cwd")
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


@pytest.mark.parametrize(("overrides", "message", "in_subprocess"), cases(GENERATE_CASES, {"label=12"}))
def test_generate_rejects_bad_input(refusal_logs, tmp_path, call_command, overrides, message, in_subprocess):
    before = snapshot(refusal_logs / "artifacts", folders=True)
    args = ["latent_dim=4", *overrides]
    refuse(call_command, in_subprocess, "generate", *args, log_dir=refusal_logs, cwd=tmp_path / "cwd", message=message)
    assert snapshot(refusal_logs / "artifacts", folders=True) == before
    assert not list((tmp_path / "cwd").iterdir())  # no x.txt, x.png, …


@pytest.mark.subprocess
def test_generate_works_from_any_folder(artifacts_copy, tmp_path):
    import numpy as np

    cwd = tmp_path / "elsewhere"
    result = run_command("generate", "latent_dim=4", "label=3", "num=5", "out=samples.npz", log_dir=artifacts_copy, cwd=cwd)
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


# As real processes: a multirun refused before its sweeper starts, and a single run.
@pytest.mark.parametrize(
    ("overrides", "message", "in_subprocess"),
    cases(SEARCH_CASES, {"-m search=optuna search.rescore_top=-1", "generator.theta=-0.5"}),
)
def test_search_rejects_bad_input(refusal_logs, tmp_path, call_command, overrides, message, in_subprocess):
    before = snapshot(refusal_logs / "artifacts", folders=True)
    args = ["latent_dim=4", "eval.samples_per_label=6", "logger=none", *overrides]
    refuse(call_command, in_subprocess, "search", *args, log_dir=refusal_logs, cwd=tmp_path / "cwd", message=message)
    assert snapshot(refusal_logs / "artifacts", folders=True) == before
    assert not (refusal_logs / "search" / "optuna.db").exists()  # no Optuna trial was started
    assert not list((refusal_logs / "search").glob("multiruns/*/0"))  # nor any job


@pytest.mark.subprocess
def test_a_bad_swept_value_stops_the_sweep_at_its_job(artifacts_copy, tmp_path):
    """The shared config (W&B logger and all) passes; job 0 runs and closes its W&B run; job 1 is refused."""
    result = run_command(
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


@pytest.mark.subprocess
def test_report_refuses_a_folder_that_is_not_a_sweep(tmp_path):
    not_a_sweep = tmp_path / "not_a_sweep"
    not_a_sweep.mkdir()
    result = run_command(
        "report", str(not_a_sweep), "--out", str(tmp_path / "report"), log_dir=tmp_path / "logs", cwd=tmp_path / "cwd"
    )
    assert_refused(
        result,
        f"SWEEP_DIR='{not_a_sweep}' is not allowed: a finished `python -m catvae.search -m` folder "
        "(this one has no trials.csv and best.json)",
    )
    assert not (tmp_path / "report").exists()
    result = run_command("report", "/not/a/sweep", log_dir=tmp_path / "logs", cwd=tmp_path / "cwd")
    assert_refused(result, "SWEEP_DIR='/not/a/sweep' is not allowed")
    assert not list((tmp_path / "cwd").iterdir())


PAPER_CASES = [
    (["--trials", "0"], "--trials=0 is not allowed: an integer >= 1"),
    (["--samples-per-label", "1"], "--samples-per-label=1 is not allowed: an integer >= 2"),
    (["--extra", "latent_dim=abc"], "latent_dim='abc' is not allowed: an integer"),
]


@pytest.mark.parametrize(("args", "message", "in_subprocess"), cases(PAPER_CASES, {"--trials 0"}))
def test_paper_rejects_bad_arguments(tmp_path, call_command, args, message, in_subprocess):
    args = ["--log-dir", str(tmp_path / "logs"), *args]
    refuse(call_command, in_subprocess, "paper", *args, log_dir=tmp_path / "logs", cwd=tmp_path / "cwd", message=message)
    assert not (tmp_path / "logs" / "artifacts").exists() and not list((tmp_path / "cwd").iterdir())


BENCH_CASES = [
    (["--jobs", "1"], "--jobs=1 is not allowed: an integer >= 2"),
    (["--devices", "tpu"], "--devices='tpu' is not allowed: auto, cpu, cuda, or cpu,cuda"),
] + ([] if HAS_GPU else [(["--devices", "cuda"], "--devices='cuda' is not allowed: auto or cpu: this machine has no CUDA GPU")])


@pytest.mark.parametrize(("args", "message", "in_subprocess"), cases(BENCH_CASES, {"--jobs 1"}))
def test_bench_rejects_bad_arguments(tmp_path, call_command, args, message, in_subprocess):
    args = ["--out", str(tmp_path / "bench"), *args]
    refuse(call_command, in_subprocess, "bench", *args, log_dir=tmp_path / "logs", cwd=tmp_path / "cwd", message=message)
    assert not (tmp_path / "bench").exists()


@pytest.mark.subprocess
def test_generate_does_not_import_wandb_or_lightning(tmp_path):
    code = (
        "import sys; from catvae.generate import generate; "
        "print(sorted(m for m in ('wandb', 'pytorch_lightning', 'optuna') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.stdout.strip() == "[]", result.stderr


@pytest.mark.subprocess
def test_an_optuna_sweep_of_medium2_runs_on_the_typed_config(artifacts_copy, tmp_path):
    """``+generator.theta.y.d=…`` overrides from the Optuna search space pass the schema and validate."""
    import json

    import optuna

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    result = run_command(
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
