"""Imports flow one way: domain -> persistence -> application (and adapters)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import eventcore

SRC = Path(eventcore.__file__).parent

# For each layer, the eventcore packages it may import from (its own included).
ALLOWED = {
    "_domain": {"_domain", "_exceptions"},
    "_persistence": {"_domain", "_exceptions", "_persistence"},
    "_messaging": {"_domain", "_exceptions", "_messaging"},
    "_sqlalchemy": {"_domain", "_exceptions", "_persistence", "_messaging", "_sqlalchemy"},
    "_application": {"_domain", "_exceptions", "_persistence", "_messaging", "_application"},
}
DOMAIN_THIRD_PARTY = {"pydantic", "pydantic_core"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(layer: str) -> list[Path]:
    return sorted((SRC / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_inner_layers(layer: str) -> None:
    for path in _modules(layer):
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "eventcore" and len(parts) > 1:
                assert parts[1] in ALLOWED[layer], f"{path.name} imports {name}"


def test_domain_uses_only_stdlib_and_pydantic() -> None:
    for path in [*_modules("_domain"), SRC / "_exceptions.py"]:
        for name in _imports(path):
            top = name.split(".")[0]
            allowed = top in sys.stdlib_module_names or top in DOMAIN_THIRD_PARTY
            assert allowed or top == "eventcore", f"{path.name} imports {name}"


def test_persistence_core_has_no_sqlalchemy() -> None:
    for path in _modules("_persistence"):
        for name in _imports(path):
            assert not name.startswith("sqlalchemy"), f"{path.name} imports {name}"
