"""Experiment loggers from the config (W&B, CSV, none) and what we log beyond Lightning's metrics."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import Logger, WandbLogger

from catvae.core.targets import instantiate


def build_loggers(nodes: Mapping[str, Any] | None) -> list[Logger]:
    """Instantiate every logger of ``nodes`` (the ``logger`` group: name → ``_target_`` node; empty means none)."""
    return [instantiate(node) for node in (nodes or {}).values() if node is not None]


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a/b": 1}``; lists and strings stay as they are."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}/"))
        else:
            flat[name] = value
    return flat


def log_summary(loggers: Iterable[Logger], numbers: Mapping[str, Any]) -> None:
    """Final numbers: the W&B run summary, a last row for the others (numbers only)."""
    scalars = {k: v for k, v in flatten(numbers).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.summary.update(scalars)
        else:
            logger.log_metrics(scalars)
            logger.save()


def log_image(loggers: Iterable[Logger], key: str, path: Path, caption: str) -> None:
    """A picture for the loggers that show pictures (W&B)."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[str(path)], caption=[caption])


def close_loggers(loggers: Iterable[Logger], status: str) -> None:
    """Flush and close; a W&B run is finished so the next job (multirun) starts its own."""
    for logger in loggers:
        logger.finalize(status)
        if isinstance(logger, WandbLogger) and getattr(logger, "_experiment", None) is not None:
            logger.experiment.finish(exit_code=0 if status == "success" else 1)
