"""The artifact key a command's config names: a module of its own, so that the commands that must stay
light (``catvae.generate`` imports neither Lightning nor W&B) read it without the settings builders."""

from __future__ import annotations

from omegaconf import DictConfig

from catvae.artifacts import ArtifactKey


def artifact_key(cfg: DictConfig) -> ArtifactKey:
    """The key named by ``data.name``, ``vae.name``, ``latent_dim`` and ``seed`` (ranges: :mod:`catvae.config.validate`)."""
    return ArtifactKey(str(cfg.data.name), str(cfg.vae.name), int(cfg.latent_dim), int(cfg.seed))
