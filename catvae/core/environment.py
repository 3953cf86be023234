"""What the process's environment says about the services it logs to (no heavy import: the config
package's resolvers use it while a command composes its config)."""

from __future__ import annotations

import os
from pathlib import Path


def wandb_offline() -> bool:
    """Offline unless WANDB_MODE=online, or WANDB_MODE is unset and W&B credentials exist."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode:
        return mode != "online"
    if os.environ.get("WANDB_API_KEY"):
        return False
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return not (netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore"))


def cache_dir() -> Path:
    """Where catvae keeps what it can rebuild from installed files (a decoded dataset):
    ``$CATVAE_CACHE_DIR``, else ``$XDG_CACHE_HOME/catvae``, else ``~/.cache/catvae``."""
    if os.environ.get("CATVAE_CACHE_DIR"):
        return Path(os.environ["CATVAE_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "catvae"
