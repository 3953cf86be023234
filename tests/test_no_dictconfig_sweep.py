"""Below the commands and the config package no function takes the whole config (issue 15): no module
of ``catvae/sweep/`` imports ``DictConfig`` or names it in an annotation, nor reads Hydra's config;
the search layer is handed typed settings (:mod:`catvae.sweep.settings`) built in ``catvae.config``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SWEEP = Path(__file__).resolve().parents[1] / "catvae" / "sweep"
CONFIG_NAMES = {"DictConfig", "HydraConfig"}  # the composed config, and Hydra's own (a job's sweeper, its number)


def config_uses(source: str) -> list[str]:
    """Where ``source`` imports a config class, or names one in an annotation or an expression."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name.rsplit(".", 1)[-1] in CONFIG_NAMES:
                    found.append(f"line {node.lineno}: imports {alias.name}")
        elif isinstance(node, ast.Name) and node.id in CONFIG_NAMES:
            found.append(f"line {node.lineno}: names {node.id}")
        elif isinstance(node, ast.Attribute) and node.attr in CONFIG_NAMES:
            found.append(f"line {node.lineno}: names {node.attr}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in CONFIG_NAMES:
            found.append(f"line {node.lineno}: names {node.value} in a string annotation")
    return sorted(found, key=lambda where: int(where.split(":")[0].removeprefix("line ")))


def test_the_scan_finds_each_way_of_taking_the_config():
    source = (
        "from omegaconf import DictConfig\n"
        "import omegaconf\n"
        "def f(cfg: omegaconf.DictConfig) -> None: ...\n"
        "def g(cfg: 'DictConfig') -> None: ...\n"
        "def h() -> None:\n"
        "    from hydra.core.hydra_config import HydraConfig\n"
    )
    assert config_uses(source) == [
        "line 1: imports DictConfig",
        "line 3: names DictConfig",
        "line 4: names DictConfig in a string annotation",
        "line 6: imports HydraConfig",
    ]
    assert config_uses("from omegaconf import OmegaConf\ndef f(node: dict) -> dict: return node\n") == []


@pytest.mark.parametrize("module", sorted(path.name for path in SWEEP.glob("*.py")))
def test_no_sweep_module_takes_the_config(module):
    assert config_uses((SWEEP / module).read_text()) == []
