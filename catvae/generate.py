"""``python -m catvae.generate vae=… latent_dim=… label=7|all num=K [out=F.npz]``: new images of a class.

Loads the artifacts that ``catvae.train`` published for (data, vae, latent_dim, seed), draws
``num`` codes per requested label with the configured generator, decodes them and writes a PNG
grid (and, with ``out=F.npz``, the images and labels). Imports neither Lightning nor W&B.
"""
from __future__ import annotations

import math
from pathlib import Path

import hydra
import numpy as np
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from catvae.core.artifacts import ArtifactKey, load_models
from catvae.core.config import TRUSTED_TARGETS, ConfigError, exit_on_user_error, positive_int
from catvae.core.device import resolve_device
from catvae.core.errors import UserError
from catvae.core.files import atomic_write
from catvae.latent.generators import build_generator, generate_images, target_labels
from catvae.core.images import save_grid
from catvae.models.networks import IMAGE_SIDE
from catvae.sweep.records import resolve_generator

MAX_GRID_COLUMNS = 16


def requested_labels(label: object, num_classes: int) -> list[int]:
    """``"all"`` → every class; an integer label in range → that one; anything else → ConfigError."""
    allowed = f'"all" or an integer label from 0 to {num_classes - 1}'
    if label == "all":
        return list(range(num_classes))
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < num_classes:
        raise ConfigError("label", label, allowed)
    return [label]


def write_npz(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write ``images`` and ``labels`` to ``path`` atomically, so no half-written file stays."""
    with atomic_write(path, binary=True) as handle:
        np.savez(handle, images=images, labels=labels)


@exit_on_user_error(UserError, InstantiationException)
def generate(cfg: DictConfig) -> dict[str, str]:
    """Generate, write the files, and return their paths."""
    num = positive_int(cfg, "num")
    if not (cfg.label == "all" or isinstance(cfg.label, int)):
        raise ConfigError("label", cfg.label, '"all" or an integer class label')
    out = Path(cfg.out) if cfg.out else None
    if out is not None and out.suffix != ".npz":
        raise ConfigError("out", cfg.out, "a file name ending in .npz")
    key = ArtifactKey.from_config(cfg)
    models = load_models(key, cfg.paths.artifacts_dir, resolve_device(str(cfg.device), "device"))
    generator = build_generator(resolve_generator(cfg.generator, cfg.paths.search_records_dir, key, models))
    labels = target_labels(requested_labels(cfg.label, models.stats.num_classes), num)
    images = generate_images(generator, models.stats, models.decoder, labels, int(cfg.sample_seed))

    if cfg.png:
        png = Path(cfg.png)
    elif out is not None:
        png = out.with_suffix(".png")
    else:
        png = Path(cfg.paths.output_dir) / "samples.png"
    if cfg.label == "all":  # one row per label, at most MAX_GRID_COLUMNS samples of each
        columns = min(num, MAX_GRID_COLUMNS)
        shown = images.view(-1, num, images.shape[1])[:, :columns].reshape(-1, images.shape[1])
    else:
        columns, shown = max(1, math.ceil(math.sqrt(num))), images
    written = {"png": str(save_grid(shown, png, columns=columns))}
    if out is not None:
        write_npz(out, images.reshape(-1, IMAGE_SIDE, IMAGE_SIDE).cpu().numpy().astype(np.float32), labels.numpy())
        written["npz"] = str(out)
    print(f"{len(labels)} images, generator {generator.params(models.stats)}, from {models.folder}")
    for kind, path in written.items():
        print(f"{kind}: {path}")
    return written


@hydra.main(config_path="conf", config_name="generate", execution_whitelist=TRUSTED_TARGETS)
def main(cfg: DictConfig) -> None:
    generate(cfg)


if __name__ == "__main__":
    main()
