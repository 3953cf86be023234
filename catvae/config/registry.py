"""Config plumbing shared by the entry points: where the configs live, resolvers, schemas (and, from
:mod:`catvae.core.instantiate`, the trusted targets)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from catvae.config.schema import register_schemas
from catvae.core.environment import wandb_offline
from catvae.core.instantiate import TRUSTED_TARGETS, instantiate

__all__ = ["CONF_DIR", "TRUSTED_TARGETS", "instantiate", "register_resolvers", "wandb_offline"]

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def folder_name(path: object) -> str:
    """The last component of an absolute version of ``path`` (names IDX datasets by their folder)."""
    return Path(str(path)).resolve().name or "root"


def sqlite_url(path: str) -> str:
    """``sqlite:///ABS_PATH`` for a database file, its folder created (SQLite will not create it)."""
    file = Path(str(path)).resolve()
    file.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{file}"


def auto_precision(accelerator: str) -> str:
    """``${catvae.precision:ACCELERATOR}``: bf16-mixed where that device has fast bf16, else 32-true."""
    from catvae.core.device import auto_precision as choose

    return choose(str(accelerator))


def run_group(single: str) -> str:
    """The W&B group of a run: in a multirun (a grid, whatever launcher runs its jobs) the multirun
    folder's name, so every job of the grid lands in one group; else ``single``."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return folder_name(HydraConfig.get().sweep.dir)
    return single


def register_resolvers() -> None:
    """``${catvae.stem:PATH}`` (a folder's name), ``${catvae.sqlite:PATH}``, ``${catvae.wandb_offline:}``,
    ``${catvae.precision:ACCELERATOR}`` and ``${catvae.group:SINGLE_RUN_GROUP}``."""
    OmegaConf.register_resolver("catvae.stem", folder_name, replace=True)
    OmegaConf.register_resolver("catvae.wandb_offline", wandb_offline, replace=True)
    OmegaConf.register_resolver("catvae.sqlite", sqlite_url, replace=True)
    OmegaConf.register_resolver("catvae.precision", auto_precision, replace=True)
    OmegaConf.register_resolver("catvae.group", run_group, replace=True)


register_resolvers()
register_schemas()
