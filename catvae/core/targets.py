"""The packages whose classes and functions a config or an artifact may name as ``_target_``.

Hydra's execution whitelist (only trailing ``.*`` patterns). It lives at the bottom layer because
artifacts name targets too: a ``vae.pt`` stores the ``_target_`` node of its networks
(:func:`catvae.artifacts.read_vae`), and a file must not make catvae call what no config could.
The root config key ``extra_trusted_targets`` (a list of ``package.*`` patterns) adds a
researcher's own packages for one run (:func:`trust`, called by :mod:`catvae.config.task`).
"""

from __future__ import annotations

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


def is_trusted(target: object) -> bool:
    """Whether ``target`` (a dotted path) is one of :data:`TRUSTED_TARGETS`: ``pkg.*`` covers ``pkg.x.y``."""
    if not isinstance(target, str):
        return False
    for pattern in TRUSTED_TARGETS:
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


def instantiate_trusted(node: Mapping[str, Any], /, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` restricted to :data:`TRUSTED_TARGETS`."""
    from hydra.utils import instantiate

    return instantiate(node, _execution_whitelist_=list(TRUSTED_TARGETS), **kwargs)
