"""Building objects from config nodes: ``hydra.utils.instantiate`` limited to the trusted packages.

The bottom layer owns it, so every layer that builds an object from its node (a generator, a
logger, a trainer, a dataset) uses the same whitelist without importing the config package."""

from __future__ import annotations

from typing import Any

# Packages whose classes and functions a config may name as ``_target_`` (Hydra's execution
# whitelist). Extend it here if your own configs name targets elsewhere.
TRUSTED_TARGETS = [
    "catvae.*",
    "pytorch_lightning.*",
    "torch.optim.*",
    "torchmetrics.*",
    "optuna.samplers.*",
    "wandb.Settings",
    "hydra_plugins.hydra_optuna_sweeper.*",
]


def instantiate(node: Any, /, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` restricted to :data:`TRUSTED_TARGETS`."""
    from hydra.utils import instantiate as hydra_instantiate

    return hydra_instantiate(node, _execution_whitelist_=TRUSTED_TARGETS, **kwargs)
