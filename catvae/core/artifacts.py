"""Trained artifacts of one (dataset, vae, latent_dim, seed), found again by later commands.

Layout: ``{artifacts_dir}/{data}/{vae}-{latent_dim}/seed{seed}/`` holding ``vae.pt``,
``classifier.pt``, ``stats.pt``, ``summary.json`` and ``samples.png``. Training writes into a
staging folder beside it and swaps it in only when every stage finished, so an interrupted or
failed run never leaves half-written artifacts and never destroys the previous good ones.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig

from catvae.core.errors import MissingArtifactsError
from catvae.models.networks import ClassifierNet, Decoder, Encoder
from catvae.latent.statistics import ClassLatentStats

VAE_FILE, CLASSIFIER_FILE, STATS_FILE, SUMMARY_FILE, SAMPLES_FILE = (
    "vae.pt", "classifier.pt", "stats.pt", "summary.json", "samples.png")
REQUIRED = (VAE_FILE, CLASSIFIER_FILE, STATS_FILE)


@dataclass(frozen=True)
class ArtifactKey:
    """What identifies a trained pipeline."""

    data: str
    vae: str
    latent_dim: int
    seed: int

    @classmethod
    def from_config(cls, cfg: DictConfig) -> ArtifactKey:
        """The key named by ``data.name``, ``vae.name``, ``latent_dim`` and ``seed`` (ranges: catvae.core.validate)."""
        return cls(str(cfg.data.name), str(cfg.vae.name), int(cfg.latent_dim), int(cfg.seed))

    def folder(self, artifacts_dir: str | Path) -> Path:
        return Path(artifacts_dir) / self.data / f"{self.vae}-{self.latent_dim}" / f"seed{self.seed}"

    def train_command(self) -> str:
        return (f"python -m catvae.train data={self.data} vae={self.vae} "
                f"latent_dim={self.latent_dim} seed={self.seed}")


@dataclass
class Models:
    """Everything generation needs, loaded in evaluation mode."""

    encoder: Encoder
    decoder: Decoder
    classifier: ClassifierNet
    stats: ClassLatentStats
    folder: Path


def save_vae(encoder: Encoder, decoder: Decoder, hidden: list[int], path: Path) -> None:
    torch.save({"latent_dim": encoder.latent_dim, "hidden": list(hidden),
                "encoder": encoder.state_dict(), "decoder": decoder.state_dict()}, path)


def save_classifier(net: ClassifierNet, path: Path) -> None:
    torch.save({"num_classes": net.num_classes, "state_dict": net.state_dict()}, path)


def write_json(data: dict, path: Path) -> Path:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path


def load_models(key: ArtifactKey, artifacts_dir: str | Path, device: torch.device | str = "cpu") -> Models:
    """Load VAE, classifier and statistics onto ``device``; a missing file names the train command that makes it."""
    folder = key.folder(artifacts_dir)
    missing = [name for name in REQUIRED if not (folder / name).is_file()]
    if missing:
        raise MissingArtifactsError(
            f"no trained artifacts for data={key.data} vae={key.vae} latent_dim={key.latent_dim} "
            f"seed={key.seed}: {', '.join(missing)} missing in {folder}. Train them first with:\n"
            f"  {key.train_command()}")
    vae_state = torch.load(folder / VAE_FILE, map_location="cpu", weights_only=True)
    encoder = Encoder(vae_state["latent_dim"], vae_state["hidden"])
    decoder = Decoder(vae_state["latent_dim"], vae_state["hidden"])
    encoder.load_state_dict(vae_state["encoder"])
    decoder.load_state_dict(vae_state["decoder"])
    clf_state = torch.load(folder / CLASSIFIER_FILE, map_location="cpu", weights_only=True)
    classifier = ClassifierNet(clf_state["num_classes"])
    classifier.load_state_dict(clf_state["state_dict"])
    classifier.to(memory_format=torch.channels_last)  # faster inference (see ClassifierNet.forward)
    for net in (encoder, decoder, classifier):
        net.to(device).eval()
    return Models(encoder, decoder, classifier, ClassLatentStats.load(folder / STATS_FILE).to(device), folder)


def best_search_path(folder: Path, generator: str) -> Path:
    """Where the best configuration a search found for ``generator`` is kept beside the artifacts."""
    return folder / "search" / f"best-{generator}.json"


def record_best(folder: Path, generator: str, candidate: dict) -> bool:
    """Keep ``candidate`` (holding ``objective``, ``eval`` and the generator ``config``) if it beats the
    recorded best under the same evaluation settings. Under other settings, the record scored on
    more samples per label wins (a quick low-sample sweep does not replace a full one)."""
    path = best_search_path(folder, generator)
    if path.is_file():
        recorded = json.loads(path.read_text())
        if recorded.get("eval") == candidate.get("eval"):
            if recorded["objective"] <= candidate["objective"]:
                return False
        elif recorded.get("eval", {}).get("samples_per_label", 0) > candidate["eval"]["samples_per_label"]:
            return False
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    write_json(candidate, partial)
    os.replace(partial, path)
    return True


def load_best(folder: Path, generator: str, key: ArtifactKey) -> dict:
    """The recorded best configuration of ``generator``, or an error naming the search that makes it."""
    path = best_search_path(folder, generator)
    if not path.is_file():
        raise MissingArtifactsError(
            f"generator.from_search=best: no search of generator={generator} has been recorded for data={key.data} "
            f"vae={key.vae} latent_dim={key.latent_dim} seed={key.seed} ({path} is missing). Run one first, e.g.\n"
            f"  python -m catvae.search -m vae={key.vae} latent_dim={key.latent_dim} generator={generator} search=optuna")
    return json.loads(path.read_text())


@contextlib.contextmanager
def staged_folder(final: Path) -> Iterator[Path]:
    """Yield an empty staging folder; on success it replaces ``final`` atomically, on error it is removed."""
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{final.name}.staging-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    retired = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
    if final.exists():
        os.replace(final, retired)
    os.replace(staging, final)
    shutil.rmtree(retired, ignore_errors=True)
