"""Multi-process training (``trainer=ddp``): sharding by rank, the checks of the config, and a tiny
pipeline trained by 2 CPU processes (gloo) that publishes what one process publishes, from rank 0 alone."""

from __future__ import annotations

import json
import math
import os
import subprocess
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import install_judge
from helpers import command_env, run_command
from wandb_files import find_run_files, read_run

from catvae.artifacts import ArtifactKey, load_models
from catvae.config.validate import validate_judge, validate_train
from catvae.core.errors import ConfigError
from catvae.data.datamodule import TensorBatches, TensorDataModule
from catvae.models.epoch_means import EpochMeans


def epoch(count: int, batch: int, seed: int, rank: int = 0, world: int = 1, epochs: int = 2) -> list[list[list[int]]]:
    """The row indices of each step of ``epochs`` epochs that ``rank`` of ``world`` processes trains on."""
    batches = TensorBatches((torch.arange(count),), batch, shuffle=True, seed=seed, rank=rank, world_size=world)
    passes = [[step[0].tolist() for step in batches] for _ in range(epochs)]
    assert all(len(steps) == len(batches) for steps in passes)
    return passes


@pytest.mark.parametrize(("count", "world"), [(1003, 2), (1000, 4), (7, 4)])
def test_training_shards_are_disjoint_and_cover_every_epoch(count, world):
    batch, seed = 100 if count > 100 else 4, 7
    one = epoch(count, batch, seed)
    ranks = [epoch(count, batch, seed, rank, world) for rank in range(world)]
    padded = math.ceil(count / world) * world
    for index, single in enumerate(one):
        shards = [ranks[rank][index] for rank in range(world)]
        # Every process takes as many steps, with slices of the same size: DDP's all-reduce needs both.
        assert len({len(steps) for steps in shards}) == 1
        for step, global_batch in enumerate(single):
            sizes = {len(shard[step]) for shard in shards}
            assert len(sizes) == 1
            # The processes' slices of a step together are the batch one process takes (then the padding).
            together = [row for shard in shards for row in shard[step]]
            assert together[: len(global_batch)] == global_batch
        rows = [row for shard in shards for step in shard for row in step]
        assert len(rows) == padded and sorted(set(rows)) == list(range(count))  # the epoch, covered
        # Disjoint but for the padding: padded - count rows (at most world - 1) are seen twice.
        assert len(rows) - len(set(rows)) == padded - count < world
        per_rank = [{row for step in shard for row in step} for shard in shards]
        assert sum(len(rows) for rows in per_rank) == padded
    assert one[0] != one[1] and ranks[0][0] != ranks[0][1]  # a new order every epoch, the same on every rank


def test_evaluation_sets_are_split_in_blocks_or_shared_when_too_small():
    rows = torch.arange(11)
    blocks = [[b[0].tolist() for b in TensorBatches((rows,), 2, shuffle=False, rank=r, world_size=3)] for r in range(3)]
    assert [[row for step in block for row in step] for block in blocks] == [[0, 1, 2], [3, 4, 5, 6], [7, 8, 9, 10]]
    tiny = [[b[0].tolist() for b in TensorBatches((rows[:2],), 5, shuffle=False, rank=r, world_size=3)] for r in range(3)]
    assert tiny == [[[0, 1]]] * 3  # fewer rows than processes: every process scores all (the means are unchanged)


def test_a_batch_that_does_not_split_evenly_is_refused():
    with pytest.raises(ValueError, match="a batch of 99 does not split evenly across 2 processes"):
        TensorBatches((torch.arange(10),), 99, shuffle=True, world_size=2)


def test_the_data_module_shards_by_the_trainers_rank():
    """Each rank's training loader holds 1/world_size of the data per epoch, as the attached Trainer says."""
    images, labels = torch.arange(1000).float().unsqueeze(1), torch.arange(1000) % 10
    seen = []
    for rank in range(2):
        module = TensorDataModule((images, labels), (images[:50], labels[:50]), {"test": (images[:30], labels[:30])}, 100)
        cpu = SimpleNamespace(root_device=torch.device("cpu"))
        module.trainer = SimpleNamespace(global_rank=rank, world_size=2, strategy=cpu)
        loader = module.train_dataloader()
        assert len(loader) == 10 and {len(x) for x, _ in loader} == {50}
        seen.append({int(v) for x, _ in loader for v in x.flatten()})
        assert sum(len(x) for x, _ in module.val_dataloader()) == 25
        assert sum(len(x) for x, _ in module.test_dataloader()[0]) == 15
    assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == 1000


def test_epoch_means_add_up_the_processes_sums_and_counts():
    """Rank 0 averaged 2 images, rank 1 (simulated by the reduce) 6: the logged mean is over all 8."""
    means = EpochMeans(("loss",))
    means.add({"loss": torch.tensor(1.0)}, 2)
    other = torch.tensor([6 * 3.0, 6.0])  # rank 1: loss 3 over 6 images → (sum, count)
    strategy = SimpleNamespace(reduce=lambda tensor, reduce_op: tensor + other)
    means.all_reduce(strategy, torch.device("cpu"))
    assert means.pop()["loss"].item() == pytest.approx((2 * 1 + 6 * 3) / 8)
    empty = EpochMeans(("loss",))  # a rank that saw no batch still takes part, with zeros
    empty.all_reduce(strategy, torch.device("cpu"))
    assert empty.pop()["loss"].item() == 3.0


DDP_REFUSALS = [
    (["trainer=ddp", "trainer.devices=0"], "trainer.devices=0 is not allowed: an integer >= 1: the training processes on each"),
    (["trainer=ddp", "trainer.num_nodes=0"], "trainer.num_nodes=0 is not allowed: an integer >= 1: the machines that train"),
    (["trainer=ddp", "trainer.devices=auto"], "trainer.devices='auto' is not allowed: an integer >= 1"),
    (["trainer=ddp", "trainer.strategy=ddp_spawn"], "trainer.strategy='ddp_spawn' is not allowed: one of auto, ddp"),
    (["trainer=ddp", "trainer.accelerator=gpu"], "trainer.accelerator='gpu' is not allowed: auto or cpu: this machine has no"),
    (
        ["trainer=ddp", "trainer.devices=3"],
        "data.batch_size=256 is not allowed: a multiple of 3, the training processes (trainer.devices × trainer.num_nodes): "
        "batch sizes are global and each process takes an equal share of every batch (e.g. data.batch_size=255)",
    ),
    (["trainer=ddp", "classifier.batch_size=129"], "classifier.batch_size=129 is not allowed: a multiple of 2"),
    (
        ["trainer=ddp", "trainer.num_nodes=2"],
        "trainer.num_nodes=2 is not allowed: 1 in a process started by hand: training on several nodes needs one process "
        "per device on every node, started by srun",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), DDP_REFUSALS)
def test_ddp_settings_are_refused_with_the_key_value_and_what_is_allowed(make_config, monkeypatch, overrides, message):
    for name in [name for name in os.environ if name.startswith("SLURM_") or name in ("TORCHELASTIC_RUN_ID", "GROUP_RANK")]:
        monkeypatch.delenv(name)
    if "trainer.accelerator=gpu" in overrides and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError) as caught:
        validate_train(make_config("train", overrides))
    assert str(caught.value).startswith(message)


@pytest.mark.slow
def test_ddp_configs_that_split_validate(make_config):
    validate_train(make_config("train", ["trainer=ddp"]))
    validate_train(make_config("train", ["trainer=ddp", "trainer.devices=4"]))  # 256, 128 and 128 split by 4
    validate_judge(make_config("judge", ["trainer=ddp", "judge.batch_size=64"]))
    with pytest.raises(ConfigError, match=r"judge.batch_size=66 is not allowed: a multiple of 4"):
        validate_judge(make_config("judge", ["trainer=ddp", "trainer.devices=4", "judge.batch_size=66"]))


# Loaded by every Python process of the DDP run (PYTHONPATH): in a process Lightning's launcher started
# for rank > 0 (LOCAL_RANK set from the start), record every file it opens for writing, creates,
# renames or removes, so the test can tell what rank 1 wrote.
AUDIT = textwrap.dedent(
    """
    import os, sys
    if os.environ.get("LOCAL_RANK", "0") != "0" and "CATVAE_AUDIT" in os.environ:
        _fd = os.open(os.environ["CATVAE_AUDIT"] + "." + os.environ["LOCAL_RANK"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        _writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
        _events = {"os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir", "shutil.rmtree", "shutil.move"}

        def _audit(event, args):
            if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
                mode, flags = args[1] or "", args[2] or 0
                if not (set(str(mode)) & set("wax+") or flags & _writes):
                    return
            elif event not in _events:
                return
            os.write(_fd, f"{event} {os.fsdecode(os.fspath(args[0]))}\\n".encode())

        sys.addaudithook(_audit)
    """
)


def run_ddp(overrides: list[str], log_dir: Path, cwd: Path, audit: Path) -> subprocess.CompletedProcess:
    """``python -m catvae.train`` as a user runs it, with the audit hook on the path."""
    hooks = cwd / "hooks"
    hooks.mkdir(exist_ok=True)
    (hooks / "sitecustomize.py").write_text(AUDIT)
    env = command_env(log_dir, pythonpath=[hooks], extra={"CATVAE_AUDIT": str(audit)})
    return run_command("train", *overrides, env=env, cwd=cwd, timeout=400)


def finite_numbers(data) -> list[float]:
    """Every number in a JSON document."""
    if isinstance(data, dict):
        return [x for value in data.values() for x in finite_numbers(value)]
    if isinstance(data, list):
        return [x for value in data for x in finite_numbers(value)]
    return [float(data)] if isinstance(data, (int, float)) and not isinstance(data, bool) else []


@pytest.mark.subprocess
def test_two_cpu_processes_train_the_tiny_pipeline_and_only_rank_0_writes(trained, tmp_path, tiny):
    """trainer=ddp trainer.devices=2 on CPU (gloo): the same published files as one process, all loadable,
    finite metrics, world size 2 in the summary, one W&B run, and nothing written by rank 1 under
    logs/artifacts (while its audit shows it did write its own log)."""
    log_dir, audit = tmp_path / "logs", tmp_path / "audit"
    result = run_ddp([*tiny, "trainer=ddp", "trainer.devices=2"], log_dir, cwd=tmp_path, audit=audit)
    assert result.returncode == 0, result.stderr[-3000:]
    key = ArtifactKey("mnist", "elbo", 4, 0)
    folder = key.folder(log_dir / "artifacts")
    assert result.stdout.strip().splitlines()[-1] == str(folder / "summary.json")  # rank 0 prints, rank 1 does not

    one_process = trained["summary"].parent
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in one_process.iterdir())
    assert sorted(p.name for p in folder.parent.iterdir()) == ["seed0"]  # no staging folder left by any rank
    models = load_models(key, log_dir / "artifacts")
    assert (models.encoder.latent_dim, models.classifier.num_classes) == (4, 10)
    assert set(models.densities) >= {"full", "gmm", "kde"}

    summary = json.loads((folder / "summary.json").read_text())
    distributed = summary["distributed"]
    assert (distributed["world_size"], distributed["backend"], distributed["strategy"]) == (2, "gloo", "ddp")
    assert distributed["batch_size"]["vae"] == {"global": 256, "per_process": 128}
    assert summary["config"]["trainer"]["devices"] == 2
    for block in ("vae_test", "classifier", "generator", "reference"):
        numbers = finite_numbers(summary[block])
        assert numbers and all(math.isfinite(x) for x in numbers), block
    assert 0 < summary["vae_test"]["neg_elbo"] < 600  # nats per image after one epoch on 1,000 images
    judge = json.loads((log_dir / "artifacts" / "mnist" / "judge" / "seed0" / "summary.json").read_text())
    assert judge["distributed"]["world_size"] == 2 and 0 < judge["accuracy"]["test_real"] <= 1

    run_dir = Path(summary["run_dir"])
    runs = find_run_files(run_dir)
    assert len(runs) == 1, runs  # one W&B run: rank 0's
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1
    record = read_run(runs[0])
    assert record.config["trainer"]["devices"] == 2 and "vae/val/loss" in {k for row in record.history for k in row}
    assert not (log_dir / "checkpoints" / "mnist" / "elbo-4").exists()  # removed once published

    written = (audit.parent / f"{audit.name}.1").read_text().splitlines()
    assert any(line.endswith("train_ddp_process_1.log") for line in written), written  # the audit saw rank 1 write
    artifacts = str(log_dir / "artifacts")
    assert [line for line in written if artifacts in line] == []
    assert [line for line in written if str(log_dir / "checkpoints") in line] == []
    assert not (run_dir / ".hydra" / "overrides.yaml").read_text().count("train_ddp_process")  # rank 0's config kept


def test_a_nan_on_another_process_stops_every_process_at_the_same_step():
    """Under DDP the guard asks all processes (any NaN stops all): a process whose own loss is finite
    raises too, saying the loss was not finite elsewhere, instead of waiting in the next all-reduce."""
    from catvae.core.errors import DivergenceError
    from catvae.training.divergence import DivergenceGuard

    asked = []

    def any_rank(decision: bool, all: bool) -> bool:
        asked.append((decision, all))
        return True  # rank 1 saw a NaN

    trainer = SimpleNamespace(
        num_training_batches=10, current_epoch=0, max_epochs=2, global_step=3, precision="32-true", world_size=2,
        strategy=SimpleNamespace(reduce_boolean_decision=any_rank),
    )  # fmt: skip
    with pytest.raises(DivergenceError) as caught:
        DivergenceGuard("vae").on_train_batch_end(trainer, None, {"loss": torch.tensor(2.5)}, None, 3)
    assert asked == [(False, False)]  # this process's loss was finite; "any" (all=False) decides
    assert str(caught.value).startswith(
        "vae training diverged: the training loss became not finite on another of the 2 processes at epoch 1/2, step 4/10"
    )


@pytest.mark.subprocess
def test_a_ddp_run_that_diverges_publishes_nothing_and_the_next_resumes_its_vae(tmp_path, tiny, judge_cache):
    """Both processes stop at the classifier's first infinite loss (exit 2, the guard's message, no
    traceback, nothing under logs/artifacts); the VAE's checkpoint, written by rank 0, is resumed by
    both processes of the next run, which publishes."""
    log_dir, audit = tmp_path / "logs", tmp_path / "audit"
    overrides = [*tiny, "trainer=ddp", "trainer.devices=2", "logger=none"]
    failed = run_ddp([*overrides, "classifier.model.lr=1e9"], log_dir, cwd=tmp_path, audit=audit)
    assert failed.returncode == 2, failed.stderr[-3000:]
    assert "Traceback" not in failed.stderr
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error: ")]
    assert errors and all(line.startswith("error: classifier training diverged: the training loss became") for line in errors)
    assert not (log_dir / "artifacts" / "mnist" / "elbo-4").exists()
    checkpoint = log_dir / "checkpoints" / "mnist" / "elbo-4" / "seed0" / "vae" / "last.ckpt"
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["callbacks"]["catvae.resume"]
    assert state["torch_rng_ranks"].shape[0] == 2  # each rank's RNG state, gathered by rank 0

    install_judge(judge_cache, log_dir)  # the judge is not what this test is about: skip its training
    resumed = run_ddp(overrides, log_dir, cwd=tmp_path, audit=audit)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    run_dir = Path(json.loads(Path(resumed.stdout.strip().splitlines()[-1]).read_text())["run_dir"])
    for log_file in ("train.log", "train_ddp_process_1.log"):
        assert "vae: already trained (1 epochs)" in (run_dir / log_file).read_text(), log_file
