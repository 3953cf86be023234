"""One writer per folder: search records live apart from the artifacts and name the models they scored."""

import hashlib
import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import TINY_DATA
from helpers import run_command, snapshot
from omegaconf import OmegaConf

from catvae.artifacts import ArtifactKey, fingerprint, judge_folder
from catvae.core.errors import ArtifactError, ConfigError, MissingArtifactsError
from catvae.generators.gaussian import build_generator
from catvae.sweep.records import load_best, record_best, record_path, resolve_generator

KEY = ArtifactKey("mnist", "elbo", 4, 0)
FULL = {"samples_per_label": 1000, "seed": 1, "cos": "pairwise"}
QUICK = {"samples_per_label": 20, "seed": 1, "cos": "pairwise"}
OLD = {"vae.pt": "a" * 64, "classifier.pt": "b" * 64, "stats.pt": "c" * 64}
NEW = {**OLD, "vae.pt": "d" * 64}
STATS = SimpleNamespace(num_classes=10, latent_dim=4)  # what θ's shape is checked against


def candidate(objective: float, evaluation: dict, models: dict = OLD, theta: float = 0.3, n: int = 3) -> dict:
    return {
        "eval": evaluation,
        "objective": objective,
        "models": {"folder": "F", "fingerprint": models},
        "config": {"_target_": "catvae.generators.gaussian.Simple", "theta": theta, "n": n},
    }


def offer_candidates(path: Path, objectives: list[float], start: Any) -> None:
    start.wait()  # all workers at once
    for objective in objectives:
        record_best(path, candidate(objective, FULL))


@pytest.mark.slow
def test_records_written_at_once_by_many_processes_keep_the_best(tmp_path):
    """Sweeps finishing together (processes sharing a study, parallel launchers) each offer their
    best: reading, comparing and writing happen under one lock, so the best offer is what stays.
    (Each worker offers ever better objectives, so every offer is a read-compare-write that races
    the others'; without the lock the final record is usually not the best one.)"""
    import multiprocessing

    path = record_path(tmp_path, KEY, "simple", "diag")
    offers = [[1.0 - 0.001 * i - 0.0001 * worker for i in range(150)] for worker in range(4)]
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(len(offers))
    workers = [context.Process(target=offer_candidates, args=(path, objectives, start)) for objectives in offers]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    assert json.loads(path.read_text())["objective"] == min(min(o) for o in offers)


def test_best_search_record_keeps_the_better_and_the_better_measured(tmp_path):
    path = record_path(tmp_path, KEY, "simple", "diag")
    assert path == tmp_path / "mnist" / "elbo-4" / "seed0" / "diag-simple.json"
    assert record_best(path, candidate(0.9, FULL))
    assert not record_best(path, candidate(0.95, FULL))  # worse
    assert record_best(path, candidate(0.85, FULL))  # better
    assert not record_best(path, candidate(0.5, QUICK))  # fewer samples: not comparable
    assert json.loads(path.read_text())["objective"] == 0.85
    # Made on other models (the key was retrained): the new search's result replaces it, even a
    # worse one on fewer samples, because the recorded θ was tuned for models that are gone.
    assert record_best(path, candidate(0.97, QUICK, NEW))
    recorded = json.loads(path.read_text())
    assert (recorded["objective"], recorded["models"]["fingerprint"]) == (0.97, NEW)
    # No partial file left; only the (empty, hidden) lock file that serialises the writers.
    assert sorted(p.name for p in path.parent.iterdir()) == [".diag-simple.json.lock", "diag-simple.json"]
    path.write_text('{"objective": 0.1, "mod')  # truncated: the next search's result replaces it
    assert record_best(path, candidate(0.99, QUICK, NEW))
    assert json.loads(path.read_text())["objective"] == 0.99


def test_from_search_best_is_resolved_against_the_models_fingerprint(tmp_path):
    models = SimpleNamespace(fingerprint=OLD, folder=tmp_path / "models", stats=STATS)
    node = {"_target_": "catvae.generators.gaussian.Simple", "theta": 0.4, "n": 2, "from_search": "best"}
    with pytest.raises(MissingArtifactsError, match="no search of generator=simple latent=diag has been recorded") as missing:
        resolve_generator(node, tmp_path, KEY, models, "diag")
    assert "python -m catvae.search -m data=mnist vae=elbo latent_dim=4 seed=0 latent=diag generator=simple" in str(missing.value)
    record_best(record_path(tmp_path, KEY, "simple", "diag"), candidate(0.8, FULL, theta=0.3, n=3))
    resolved = resolve_generator(node, tmp_path, KEY, models, "diag")
    assert resolved == {"_target_": "catvae.generators.gaussian.Simple", "theta": 0.3, "n": 3}
    assert node["from_search"] == "best"  # the configured node is left as it was
    with pytest.raises(MissingArtifactsError, match="latent=gmm"):  # the diag record is no gmm record
        resolve_generator(node, tmp_path, KEY, models, "gmm")
    assert record_path(tmp_path, KEY, "simple", "gmm").name == "gmm-simple.json"
    built = build_generator(resolved)
    assert (built.theta, built.n) == (0.3, 3)
    # The same record against retrained models: refused, naming both sets of models.
    retrained = SimpleNamespace(fingerprint=NEW, folder=tmp_path / "models", stats=STATS)
    with pytest.raises(ArtifactError) as refused:
        resolve_generator(node, tmp_path, KEY, retrained, "diag")
    message = str(refused.value)
    assert "found by a search" in message and "on other models" in message
    assert f"vae.pt sha256 {'a' * 12}…" in message and f"vae.pt sha256 {'d' * 12}…" in message
    assert str(tmp_path / "models") in message and "generator=simple" in message
    # Null leaves the configured values; another word is a config error.
    assert resolve_generator(node | {"from_search": None}, tmp_path, KEY, models, "diag")["theta"] == 0.4
    with pytest.raises(ConfigError, match=r"generator\.from_search='last'"):
        resolve_generator(node | {"from_search": "last"}, tmp_path, KEY, models, "diag")


@pytest.mark.parametrize(
    ("generator", "theta", "n", "problem"),
    [
        ("medium1", [0.1, 0.2], 1, "theta=[0.1, 0.2] is not allowed: a number or a list of 4 numbers >= 0"),
        ("medium2", [[0.5] * 4] * 3, 1, "is not allowed: a number or a 10×4 nested list of numbers >= 0"),
        ("simple", -0.3, 2, "theta=-0.3 is not allowed: a number >= 0"),
        ("simple", 0.3, 0, "n=0 is not an integer >= 1"),
    ],
)
def test_a_record_that_does_not_fit_the_models_is_refused(tmp_path, generator, theta, n, problem):
    # A hand-edited or foreign record: refused with its path, not a failure deep in sampling.
    models = SimpleNamespace(fingerprint=OLD, folder=tmp_path / "models", stats=STATS)
    path = record_path(tmp_path, KEY, generator, "diag")
    record_best(path, {**candidate(0.8, FULL), "config": {"_target_": "x", "theta": theta, "n": n}})
    with pytest.raises(ArtifactError) as refused:
        load_best(tmp_path, KEY, generator, models, "diag")
    message = str(refused.value)
    assert f"the search record {path} holds a {generator} configuration that does not fit" in message
    assert problem in message and f"generator={generator}" in message


def test_a_generator_never_opens_a_record():
    node = OmegaConf.create({"_target_": "catvae.generators.gaussian.Simple", "theta": 0.4, "n": 2, "from_search": "best"})
    with pytest.raises(ValueError, match="unresolved"):
        build_generator(node)


def test_an_unreadable_record_is_refused(tmp_path):
    path = record_path(tmp_path, KEY, "simple", "diag")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(ArtifactError, match="unreadable"):
        load_best(tmp_path, KEY, "simple", SimpleNamespace(fingerprint=OLD, folder=tmp_path), "diag")


@pytest.mark.subprocess
def test_search_never_writes_into_the_artifact_folder(trained, tmp_path):
    """A tiny sweep on the trained artifacts: the folder's files stay byte for byte, the record
    goes to the search's own folder with the fingerprint of the models as they are on disk."""
    log_dir = trained["log_dir"]
    folder = KEY.folder(log_dir / "artifacts")
    before = snapshot(folder)
    result = run_command(
        "catvae.search",
        "-m",
        "latent_dim=4",
        "eval.samples_per_label=6",
        "logger=none",
        "generator.theta=0.1,0.6",
        "generator.n=2",
        log_dir=log_dir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert snapshot(folder) == before
    sweep = Path(result.stdout.strip().splitlines()[-1].removeprefix("sweep summary: "))
    best = json.loads((sweep / "best.json").read_text())
    names = ("vae.pt", "classifier.pt", "stats.pt", "densities.pt")
    digests = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in names}
    assert best["models"] == {"folder": str(folder), "fingerprint": digests}
    assert best["record"] == str(log_dir / "search" / "best" / "mnist" / "elbo-4" / "seed0" / "diag-simple.json")
    for job in ("0", "1"):
        job_result = json.loads((sweep / job / "result.json").read_text())
        assert job_result["models"]["fingerprint"] == digests
        assert job_result["provenance"]["config"]["generator"]["theta"] == job_result["theta"]
        assert job_result["provenance"]["seed"] == 0 and job_result["provenance"]["device"] == job_result["device"]
    assert best["provenance"] == json.loads((sweep / best["job"] / "result.json").read_text())["provenance"]
    if best["recorded_as_best"]:  # an earlier sweep of this session may hold a better simple record
        assert json.loads(Path(best["record"]).read_text())["models"]["fingerprint"] == digests


@pytest.mark.subprocess
def test_generate_and_search_refuse_a_record_made_on_other_models(trained, tmp_path, make_config, capsys):
    """Copies of the trained artifacts in a log folder of their own, with a record of θ=0.3, n=3."""
    from catvae.generate import generate as generate_images
    from catvae.search import score

    log_dir = tmp_path / "logs"
    folder = KEY.folder(log_dir / "artifacts")
    shutil.copytree(KEY.folder(trained["log_dir"] / "artifacts"), folder)
    shutil.copytree(judge_folder(trained["log_dir"] / "artifacts", "mnist", 0), judge_folder(log_dir / "artifacts", "mnist", 0))
    path = record_path(log_dir / "search" / "best", KEY, "simple", "diag")
    current = fingerprint(folder)
    record_best(
        path,
        {
            **candidate(0.8, {"samples_per_label": 6, "seed": 1234, "cos": "pairwise"}, current),
            "provenance": {"time": "2026-01-02T03:04:05+00:00"},
        },
    )
    generate = ["latent_dim=4", "label=3", "num=2", "generator.from_search=best", "device=cpu"]
    generate_images(make_config("generate", generate, log_dir=log_dir))
    assert "'theta': 0.3, 'n': 3" in capsys.readouterr().out
    score(
        make_config(
            "search_job",
            ["latent_dim=4", "eval.samples_per_label=6", "logger=none", "generator.from_search=best", *TINY_DATA],
            log_dir=log_dir,
        )
    )
    job = json.loads((log_dir / "run" / "result.json").read_text())
    assert (job["config"]["theta"], job["config"]["n"]) == (0.3, 3) and "from_search" not in job["config"]
    assert job["models"]["fingerprint"] == current

    # The record now names other models, as after a retraining of the key.
    stale = json.loads(path.read_text())
    stale["models"]["fingerprint"] = {**current, "vae.pt": "0" * 64}
    path.write_text(json.dumps(stale))
    for module, overrides in (
        ("catvae.generate", generate),
        ("catvae.search", ["latent_dim=4", "eval.samples_per_label=6", "logger=none", "generator.from_search=best", *TINY_DATA]),
    ):
        refused = run_command(module, *overrides, log_dir=log_dir)
        assert refused.returncode == 2, (module, refused.stderr[-3000:])
        assert "Traceback" not in refused.stderr
        assert "found by a search (at 2026-01-02T03:04:05+00:00) on other models" in refused.stderr
        assert f"vae.pt sha256 {'0' * 12}…" in refused.stderr and f"vae.pt sha256 {current['vae.pt'][:12]}…" in refused.stderr
        assert "python -m catvae.search -m data=mnist vae=elbo latent_dim=4 seed=0 latent=diag generator=simple" in refused.stderr
    assert snapshot(folder) == snapshot(KEY.folder(trained["log_dir"] / "artifacts"))


@pytest.mark.subprocess
def test_train_refuses_from_search_best_before_training(tmp_path, tiny):
    log_dir = tmp_path / "logs"
    refused = run_command("train", *tiny, "logger=none", "generator.from_search=best", log_dir=log_dir)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "generator.from_search='best' is not allowed: null in training" in refused.stderr
    assert "then search" in refused.stderr and "catvae.generate … generator.from_search=best" in refused.stderr
    assert not (log_dir / "artifacts").exists()
    assert not list(log_dir.rglob("*.ckpt"))  # refused before any training started
