"""What a result was made with: seed, resolved config, library versions, source commit, device, time.

Every file a command publishes about a run (``summary.json``, each search job's ``result.json``,
a sweep's ``best.json`` and the search records) carries one ``provenance`` block built here, so a
number can be traced to the code and settings that produced it. What cannot change within a
process (versions, the git state of the source, the machine) is computed once and cached: a
search job costs ~0.7 s and must not pay for ``git`` on every job.
"""

from __future__ import annotations

import datetime
import functools
import importlib.metadata
import platform
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

import catvae

# Distribution names whose versions are recorded (the key is how the record names them). They are
# read from the installed metadata, so recording them imports nothing (``generate`` stays free of
# Lightning and W&B); the metadata is what ``module.__version__`` reports for each of these.
DISTRIBUTIONS = {
    "torch": "torch",
    "pytorch_lightning": "pytorch-lightning",
    "hydra-core": "hydra-core",
    "omegaconf": "omegaconf",
    "optuna": "optuna",
    "wandb": "wandb",
    "numpy": "numpy",
}
SOURCE_ROOT = Path(catvae.__file__).resolve().parent.parent


@functools.cache
def versions() -> dict[str, str | None]:
    """Python's and each library's version (None for one not installed); catvae's from the running source."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name, distribution in DISTRIBUTIONS.items():
        try:
            found[name] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    found["catvae"] = catvae.__version__
    return found


def git_state(root: Path) -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` when ``root`` is the top of a git checkout, else None.

    None as well when git is not installed or fails: provenance never stops a run. The top-level
    check matters for a wheel installed into a virtual environment that sits inside some other
    repository: that repository's commit says nothing about catvae's code.
    """
    git = shutil.which("git")
    if git is None or not (root / ".git").exists():
        return None

    def run(*args: str) -> str | None:
        try:
            done = subprocess.run([git, "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    top = run("rev-parse", "--show-toplevel")
    commit = run("rev-parse", "HEAD")
    if top is None or commit is None or Path(top).resolve() != root.resolve():
        return None
    status = run("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


@functools.cache
def source_git() -> dict[str, Any] | None:
    """The git state of the catvae source this process runs, computed once per process."""
    return git_state(SOURCE_ROOT)


@functools.cache
def device_name(device: str) -> str:
    """A readable name of the hardware behind ``device`` (the GPU's model, or the CPU's)."""
    if device.startswith("cuda"):
        try:
            return torch.cuda.get_device_name(torch.device(device))
        except (RuntimeError, AssertionError, ValueError):  # no usable CUDA here: say what was asked
            return device
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def plain_config(node: Any) -> Any:
    """The config as plain containers, interpolations resolved; one that cannot be resolved here (a
    ``${hydra:…}`` outside a Hydra run) is kept as written rather than failing the run. Plain
    containers are returned as they are."""
    if not OmegaConf.is_config(node):
        return node
    try:
        return OmegaConf.to_container(node, resolve=True)
    except OmegaConfBaseException:
        pass
    raw: Any = OmegaConf.to_container(node, resolve=False)
    keys = list(raw) if isinstance(raw, dict) else range(len(raw))
    plain: dict | list = {} if isinstance(raw, dict) else [None] * len(raw)
    for key in keys:
        try:
            child = node[key]
        except OmegaConfBaseException:
            plain[key] = raw[key]
            continue
        plain[key] = plain_config(child) if OmegaConf.is_config(child) else child
    return plain


def provenance(config: Mapping[str, Any], device: torch.device | str) -> dict[str, Any]:
    """Seed (``config``'s ``seed``), resolved config (:func:`plain_config`), versions, git state of the
    source (None outside a checkout), device and UTC time."""
    return {
        "seed": config.get("seed"),
        "config": plain_config(config),
        "versions": versions(),
        "git": source_git(),
        "device": str(device),
        "device_name": device_name(str(device)),
        "platform": platform.platform(),
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
