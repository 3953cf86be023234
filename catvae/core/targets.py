"""The packages whose classes and functions a config or an artifact may name as ``_target_``.

Hydra's execution whitelist (only trailing ``.*`` patterns). It lives at the bottom layer because
artifacts name targets too: a ``vae.pt`` stores the ``_target_`` node of its networks
(:func:`catvae.artifacts.read_vae`), and a file must not make catvae call what no config could.
A researcher's own packages join them in one of two ways, both read here: the root config key
``extra_trusted_targets`` (a list of ``package.*`` patterns) for one run (:func:`trust`, called by
:mod:`catvae.config.task`), or the environment variable ``CATVAE_TRUSTED_TARGETS`` (comma-separated)
for every command of a shell, a sweep's worker processes included.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

TRUSTED_TARGETS = [
    "catvae.*",
    "pytorch_lightning.*",
    "torch.optim.*",
    "torchmetrics.*",
    "optuna.samplers.*",
    "wandb.Settings",
    "hydra_plugins.hydra_optuna_sweeper.*",
]


TRUSTED_TARGETS_ENV = "CATVAE_TRUSTED_TARGETS"


def trusted_targets() -> list[str]:
    """:data:`TRUSTED_TARGETS` (with what :func:`trust` added) and the patterns of
    ``$CATVAE_TRUSTED_TARGETS``: comma-separated, each a package with a trailing ``.*`` or a class's or
    function's full name (``CATVAE_TRUSTED_TARGETS=mylab.densities.*,toy_density.ToyBox``). Anything
    else there is a :class:`~catvae.core.errors.ConfigError`."""
    from catvae.core.errors import ConfigError

    extra = [part.strip() for part in os.environ.get(TRUSTED_TARGETS_ENV, "").split(",") if part.strip()]
    for pattern in extra:
        if not all(part.isidentifier() for part in pattern.removesuffix(".*").split(".")):
            allowed = "comma-separated dotted names, each a package ending in .* or a full name"
            raise ConfigError(TRUSTED_TARGETS_ENV, pattern, allowed)
    return [*TRUSTED_TARGETS, *(pattern for pattern in extra if pattern not in TRUSTED_TARGETS)]


def is_trusted(target: object) -> bool:
    """Whether ``target`` (a dotted path) is one of :func:`trusted_targets`: ``pkg.*`` covers ``pkg.x.y``."""
    if not isinstance(target, str):
        return False
    for pattern in trusted_targets():
        if pattern.endswith(".*") and target.startswith(pattern[:-1]):
            return True
        if target == pattern:
            return True
    return False


def trust(patterns: Iterable[str]) -> None:
    """Add ``patterns`` (``extra_trusted_targets``: ``mypackage.*`` or exact dotted paths) to
    :data:`TRUSTED_TARGETS` for the rest of this process."""
    for pattern in patterns:
        if pattern not in TRUSTED_TARGETS:
            TRUSTED_TARGETS.append(str(pattern))


def instantiate(node: Mapping[str, Any], /, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` restricted to :func:`trusted_targets`."""
    from hydra.utils import instantiate

    return instantiate(node, _execution_whitelist_=trusted_targets(), **kwargs)
