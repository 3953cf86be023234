"""Per-epoch means of a training step's scalars, accumulated on the device without a sync.

Lightning's ``self.log(..., on_epoch=True)`` costs tens of microseconds of Python per call and
value, and a metric shown in the progress bar is read back (``.item()``, a device sync) whenever
the bar refreshes. A bf16 VAE step at batch 256 takes about 6.5 ms on a 2-core CPU (and a GPU
step is shorter still), so that cost shows. Here a step adds its values to one running sum (a single in-place
vector add on the device), and the means are logged once, at the end of the epoch.
"""

from __future__ import annotations

import warnings

import torch

# Under DDP Lightning recommends sync_dist=True for every epoch-level value; the means logged here
# are already the same on every process (EpochMeans.all_reduce), so a second reduction would only cost.
warnings.filterwarnings("ignore", message=r"It is recommended to use `self\.log\('(\w+/(train|val|test)/\w+|\w+_(loss|acc))'")


class EpochMeans:
    """Running, batch-size-weighted sums of named scalars; ``pop()`` returns the means and resets."""

    def __init__(self, names: tuple[str, ...]):
        self.names = names
        self.sums: torch.Tensor | None = None
        self.count = 0

    def add(self, values: dict[str, torch.Tensor], batch_size: int) -> None:
        stacked = torch.stack([values[name].detach().float() for name in self.names])
        if self.sums is None:
            self.sums = stacked * batch_size
        else:
            self.sums.add_(stacked, alpha=batch_size)
        self.count += batch_size

    def log(self, module, prefix: str, progress: tuple[str, str]) -> None:
        """Log the means since the last call on ``module`` as ``{prefix}{name}`` (nothing if no step
        was added), and ``progress`` = (bar label, name) in the progress bar only.

        Under DDP (``trainer=ddp``) each process has summed its own share of the data; their sums
        and counts are added up first (one all-reduce an epoch), so every process logs, and acts
        on, the means over the whole split, the same numbers one process would have logged."""
        trainer = getattr(module, "_trainer", None)
        if trainer is not None and trainer.world_size > 1:
            self.all_reduce(trainer.strategy, module.device)
        means = self.pop()
        if means:
            module.log_dict({f"{prefix}{name}": value for name, value in means.items()})
            label, name = progress
            module.log(label, means[name], prog_bar=True, logger=False)

    def all_reduce(self, strategy, device: torch.device) -> None:
        """Replace this process's sums and count by those of all processes (every process must call
        it, also one that added nothing: it contributes zeros)."""
        sums = self.sums if self.sums is not None else torch.zeros(len(self.names), device=device)
        total = strategy.reduce(torch.cat([sums, sums.new_tensor([self.count])]), reduce_op="sum")
        count = int(total[-1].item())
        self.sums, self.count = (total[:-1], count) if count else (None, 0)

    def pop(self) -> dict[str, torch.Tensor]:
        """The means since the last ``pop`` (empty if nothing was added), as 0-d tensors on the device."""
        if self.sums is None:
            return {}
        means = self.sums / self.count
        self.sums, self.count = None, 0
        return dict(zip(self.names, means.unbind()))
