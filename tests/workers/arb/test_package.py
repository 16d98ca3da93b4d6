"""The package's public names, its data files and its one-way imports."""

from __future__ import annotations

import ast
from pathlib import Path

import workers.arb
from workers.arb.names import load_aliases

PKG = Path(workers.arb.__file__).parent


def test_all_is_sorted_and_complete() -> None:
    assert workers.arb.__all__ == sorted(workers.arb.__all__)
    assert all(hasattr(workers.arb, name) for name in workers.arb.__all__)


def test_alias_table_and_schema_ship_with_the_package() -> None:
    aliases = load_aliases()
    assert "Los Angeles Lakers" in aliases["basketball_nba"]
    assert (PKG / "arbs.schema.json").is_file()


def test_never_imports_the_supervisor_or_the_store() -> None:
    for path in PKG.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module.split(".")[0] not in {"supervisor", "status"}, path
