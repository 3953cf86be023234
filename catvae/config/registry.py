"""Config plumbing shared by the entry points: where the configs live, resolvers, trusted targets, schemas."""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from catvae.config.schema import register_schemas
from catvae.core.errors import ConfigError


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

# Packages whose classes and functions a config may name as ``_target_`` (Hydra's execution
# whitelist). Your own classes (a class density of your module, say) join them through the
# environment variable TRUSTED_TARGETS_ENV (:func:`trusted_targets`), not through a config key: a
# config may not widen what configs may run (Hydra's threat model), and an artifact's stored
# node (densities.pt) is instantiated under the same whitelist.
TRUSTED_TARGETS = [
    "catvae.*",
    "pytorch_lightning.*",
    "torch.optim.*",
    "torchmetrics.*",
    "optuna.samplers.*",
    "wandb.Settings",
    "hydra_plugins.hydra_optuna_sweeper.*",
]


def compose_config(config_name: str, overrides: list[str]) -> DictConfig:
    """The primary config ``config_name`` (``train``, ``search_job``, …) with ``overrides``, composed as
    its command composes it (outside a Hydra run: no run folder, no ``hydra.runtime``)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONF_DIR):
        return compose(config_name, overrides=overrides)


TRUSTED_TARGETS_ENV = "CATVAE_TRUSTED_TARGETS"


def trusted_targets() -> list[str]:
    """:data:`TRUSTED_TARGETS` and the patterns of ``$CATVAE_TRUSTED_TARGETS``: comma-separated,
    each a package with a trailing ``.*`` or a class's or function's full name, e.g.
    ``CATVAE_TRUSTED_TARGETS=mylab.densities.*,toy_density.ToyBox python -m catvae.train …``
    (child processes, a sweep's jobs, inherit it). Anything else there is a :class:`ConfigError`."""
    extra = [part.strip() for part in os.environ.get(TRUSTED_TARGETS_ENV, "").split(",") if part.strip()]
    for pattern in extra:
        name = pattern.removesuffix(".*")
        if not all(part.isidentifier() for part in name.split(".")):
            raise ConfigError(
                TRUSTED_TARGETS_ENV, pattern, "comma-separated dotted names, each a package ending in .* or a full name"
            )
    return [*TRUSTED_TARGETS, *extra]


def instantiate(node: Any, /, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` restricted to :func:`trusted_targets`."""
    from hydra.utils import instantiate as hydra_instantiate

    return hydra_instantiate(node, _execution_whitelist_=trusted_targets(), **kwargs)


def wandb_offline() -> bool:
    """Offline unless WANDB_MODE=online, or WANDB_MODE is unset and W&B credentials exist."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode:
        return mode != "online"
    if os.environ.get("WANDB_API_KEY"):
        return False
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return not (netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore"))


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
