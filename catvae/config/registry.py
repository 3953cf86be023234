"""Config plumbing shared by the entry points: where the configs live, resolvers, schemas (and, from
:mod:`catvae.core.targets`, the trusted targets)."""

from __future__ import annotations

import importlib.resources
import importlib.util
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from catvae.config.schema import register_schemas
from catvae.core import targets
from catvae.core.environment import wandb_offline

__all__ = ["CONFIG_PATH", "CONF_DIR", "TRUSTED_TARGETS", "compose_config", "instantiate", "register_resolvers", "wandb_offline"]


def find_conf_dir() -> tuple[str, str]:
    """Where the Hydra configs are: ``(folder, config_path for hydra.main)``.

    The repository's top-level ``conf/`` is installed as the package ``catvae.conf`` (pyproject.toml's
    ``package-dir``): inside the wheel by ``pip install .``, mapped onto ``conf/`` by ``pip install -e .``.
    Where ``catvae`` is imported from a checkout that was not installed that way (the source tree on
    ``sys.path`` ahead of a wheel install), ``catvae.conf`` does not exist: the checkout's ``conf/`` then.
    """
    if importlib.util.find_spec("catvae.conf") is not None:
        return str(importlib.resources.files("catvae.conf")), "pkg://catvae.conf"
    checkout = Path(__file__).resolve().parents[2] / "conf"
    return str(checkout), str(checkout)


CONF_DIR, CONFIG_PATH = find_conf_dir()

# Packages whose classes and functions a config or an artifact may name as ``_target_``: one list,
# in catvae.core.targets (artifacts check it too). A researcher's own packages join it for one run
# with the root key ``extra_trusted_targets``, or for a shell with $CATVAE_TRUSTED_TARGETS.
TRUSTED_TARGETS = targets.TRUSTED_TARGETS
TRUSTED_TARGETS_ENV = targets.TRUSTED_TARGETS_ENV
trusted_targets = targets.trusted_targets
instantiate = targets.instantiate


def compose_config(config_name: str, overrides: list[str]) -> DictConfig:
    """The primary config ``config_name`` (``train``, ``search_job``, …) with ``overrides``, composed as
    its command composes it (outside a Hydra run: no run folder, no ``hydra.runtime``)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONF_DIR):
        return compose(config_name, overrides=overrides)


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
