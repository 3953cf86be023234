"""The optimiser both training stages use: Adam (paper §4.2), with an optional one-cycle schedule.

``schedule="onecycle"`` warms the learning rate up to ``lr`` over the first 30 % of the steps and
anneals it to ~0 afterwards (``torch.optim.lr_scheduler.OneCycleLR``): for the few epochs these
models train, it reaches a given quality in fewer epochs than a constant rate (README, "Training
recipe"). ``constant`` is the paper's plain Adam at ``lr``.
"""

from __future__ import annotations

import torch

SCHEDULES = ("constant", "onecycle")


def check_schedule(schedule: str) -> str:
    """``schedule`` if it is one of :data:`SCHEDULES` (a ValueError otherwise)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r} is not allowed: one of {', '.join(SCHEDULES)}")
    return schedule


def adam(module, lr: float, schedule: str) -> dict:
    """What ``LightningModule.configure_optimizers`` returns: fused Adam (one kernel per step, not
    one per tensor; about 2× faster steps on CPU) and, for ``onecycle``, a per-step scheduler over
    the Trainer's whole fit."""
    optimizer = torch.optim.Adam(module.parameters(), lr=lr, fused=True)
    if schedule == "constant":
        return {"optimizer": optimizer}
    steps = int(module.trainer.estimated_stepping_batches)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(1, steps))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
