"""The package's import layers (pyproject.toml's ``[tool.importlinter]``) and no import circle, within pytest."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
from helpers import loggers_kept
from importlinter.cli import lint_imports

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_the_layer_contract_is_kept() -> None:
    """Each layer imports only the layers below it (imports inside functions included): ``lint-imports``' contract."""
    with loggers_kept():  # import-linter configures logging, disabling the loggers that exist
        kept = lint_imports(config_filename=str(PYPROJECT), no_cache=True, no_logo=True)
    assert kept == 0


def test_no_module_imports_itself_back() -> None:
    """No import circle: for every import a → b of the package, no chain of imports leads from b back to a."""
    graph = grimp.build_graph("catvae")
    circles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                circles.append(" → ".join((importer, *back)))
    assert circles == []


# Where the whole config may be handled: the config package, and the command modules that compose it.
CONFIG_LAYER = ("catvae/config/",)
COMMANDS = tuple(f"catvae/{name}.py" for name in ("train", "search", "generate", "judge", "paper", "report", "bench"))


# The composed config, and Hydra's own (a job's sweeper, its number): read in the config layer only.
CONFIG_NAMES = ("DictConfig", "HydraConfig")


def dict_config_mentions(source: str) -> list[int]:
    """The lines of ``source`` that import or name ``DictConfig`` or ``HydraConfig`` (an annotation,
    ``omegaconf.DictConfig``, a string annotation included)."""
    tree = ast.parse(source)
    bare_strings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}  # docstrings

    def names_it(node: ast.AST) -> bool:
        if isinstance(node, ast.ImportFrom):
            return any(alias.name in CONFIG_NAMES for alias in node.names)
        if isinstance(node, ast.Name):
            return node.id in CONFIG_NAMES
        if isinstance(node, ast.Attribute):
            return node.attr in CONFIG_NAMES
        if isinstance(node, ast.Constant) and isinstance(node.value, str):  # a string annotation
            return any(name in node.value for name in CONFIG_NAMES) and id(node) not in bare_strings
        return False

    lines = [node.lineno for node in ast.walk(tree) if names_it(node)]  # type: ignore[attr-defined]
    return sorted(set(lines))


def test_below_the_config_layer_no_function_takes_the_whole_config() -> None:
    """``DictConfig`` appears only in the commands and the config package (task wrapper included):
    every layer below takes typed settings or plain values built there (catvae.config.settings)."""
    package = PYPROJECT.parent / "catvae"
    found = []
    for path in sorted(package.rglob("*.py")):
        name = path.relative_to(PYPROJECT.parent).as_posix()
        if name.startswith(CONFIG_LAYER) or name in COMMANDS:
            continue
        found += [f"{name}:{line}" for line in dict_config_mentions(path.read_text())]
    assert found == []


def test_the_scan_sees_dict_config_wherever_it_is_named() -> None:
    """The scan above finds an import, an annotation, a qualified name and a string annotation, and no docstring."""
    source = '''
"""DictConfig in a docstring is fine."""
from omegaconf import DictConfig
import omegaconf

def f(cfg: DictConfig) -> None:
    """Takes a DictConfig."""

def g(cfg: omegaconf.DictConfig, other: "DictConfig | None" = None) -> None: ...

def h() -> int:
    from hydra.core.hydra_config import HydraConfig
    return HydraConfig.get().job.num
'''
    assert dict_config_mentions(source) == [3, 6, 9, 12, 13]
