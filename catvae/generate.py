"""``python -m catvae.generate vae=… latent_dim=… label=7|NAME|all num=K [out=F.npz]``: new images of a class.

Loads the artifacts that ``catvae.train`` published for (data, vae, latent_dim, seed), draws
``num`` codes per requested label with the configured generator, decodes them and writes a PNG
grid (and, with ``out=F.npz``, the images and labels). ``latent=…`` picks the class density drawn
from. Imports neither Lightning nor W&B.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np
from omegaconf import DictConfig, OmegaConf

from catvae.artifacts import load_models
from catvae.config.keys import artifact_key
from catvae.config.task import hydra_command, run_main, run_task
from catvae.config.validate import check_against_artifacts, check_label, validate_generate
from catvae.core.device import resolve_device
from catvae.core.files import write_npz
from catvae.core.images import save_sample_grid
from catvae.data.sources import class_label_names
from catvae.generators.gaussian import build_generator, generate_images, target_labels
from catvae.sweep.records import resolve_generator


def generate(cfg: DictConfig) -> dict[str, str]:
    """Validate ``cfg``, generate, write the files, and return their paths."""
    return run_task(cfg, validate_generate, lambda loggers: write_samples(cfg))


def write_samples(cfg: DictConfig) -> dict[str, str]:
    """Draw ``num`` images per requested label from the trained artifacts; write the grid (and the .npz)."""
    num = int(cfg.num)
    out = Path(cfg.out) if cfg.out else None
    key = artifact_key(cfg)
    models = load_models(key, cfg.paths.artifacts_dir, resolve_device(str(cfg.device), "device"))
    latent = str(cfg.latent.name)
    node = cast(dict, OmegaConf.to_container(cfg.generator, resolve=True))  # plain: no config below the commands
    generator = build_generator(resolve_generator(node, cfg.paths.search_records_dir, key, models, latent))
    check_against_artifacts(cfg, models.stats)
    names = class_label_names(cfg.data.get("class_names"), models.stats.num_classes)
    wanted = check_label(cfg.label, models.stats.num_classes, names)
    labels = target_labels(wanted, num)
    density = models.density(latent)
    images = generate_images(generator, density, models.decoder, labels, int(cfg.sample_seed))

    png = Path(cfg.png) if cfg.png else out.with_suffix(".png") if out is not None else Path(cfg.paths.output_dir) / "samples.png"
    row_labels = names if cfg.label == "all" else None  # one row per label, named
    written = {"png": str(save_sample_grid(images, png, num, models.decoder.image_shape, row_labels))}
    if out is not None:
        channels, height, width = models.decoder.image_shape  # stored in vae.pt: the training data's shape
        shape = (height, width) if channels == 1 else (channels, height, width)  # N×H×W grey levels, N×C×H×W colours
        write_npz(out, images=images.reshape(-1, *shape).cpu().numpy().astype(np.float32), labels=labels.numpy())
        written["npz"] = str(out)
    which = "all classes" if cfg.label == "all" else f"class {wanted[0]} ({names[wanted[0]]})"
    print(
        f"{len(labels)} images of {which}, generator {generator.params(models.stats)} on the {latent} class density, "
        f"from {models.folder}"
    )
    for kind, path in written.items():
        print(f"{kind}: {path}")
    return written


@hydra_command("generate")
def main(cfg: DictConfig) -> dict[str, str]:
    return generate(cfg)


if __name__ == "__main__":
    run_main("catvae.generate")
