"""The package's import layers (pyproject.toml's ``[tool.importlinter]``) and no import circle, within pytest."""

from __future__ import annotations

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
