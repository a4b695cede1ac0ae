"""The platform's shape, enforced: contexts meet only through contracts, domains stay pure.

- A context imports another context only through its `contracts` module, and never the
  platform's composition (the demo, the seed, the services).
- A context's `domain/` imports only the standard library, pydantic, eventcore's
  domain-level names, and its own domain.
- Its `application/` does not reach into its `infrastructure/` (the composition root,
  `bootstrap.py`, wires them together).
- Every context has the same layout.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import eventcore
import university

ROOT = Path(university.__file__).parent
CONTEXTS = ("registration", "records")
SHARED = {
    "university.database",
    "university.identity",
    "university.messaging",
    "university.settings",
}
"""Plumbing every context may use (identity: tokens and scopes): not contexts themselves."""
DOMAIN_NAMES = {
    name
    for name in eventcore.__all__
    if getattr(getattr(eventcore, name), "__module__", "").startswith("eventcore._domain")
}


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """The modules `path` imports, each with the names taken from it."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
    return found


def modules(context: str, folder: str = "") -> list[Path]:
    return sorted((ROOT / context / folder).rglob("*.py"))


@pytest.mark.parametrize("context", CONTEXTS)
def test_contexts_meet_only_through_their_contracts(context: str) -> None:
    wrong = []
    for path in modules(context):
        for module, _ in imports(path):
            if not module.startswith("university.") or module in SHARED:
                continue
            owner = module.split(".")[1]
            if owner == context:
                continue
            if owner not in CONTEXTS or module != f"university.{owner}.contracts":
                wrong.append(f"{path.relative_to(ROOT)} imports {module}")
    assert wrong == []


def test_registration_reads_records_contracts_and_records_reads_registrations() -> None:
    def reads(context: str, other: str) -> bool:
        contract = f"university.{other}.contracts"
        return any(m == contract for p in modules(context) for m, _ in imports(p))

    assert reads("registration", "records")
    assert reads("records", "registration")


@pytest.mark.parametrize("context", CONTEXTS)
def test_the_domain_imports_only_the_standard_library_pydantic_and_eventcore_domain(
    context: str,
) -> None:
    wrong: list[str] = []
    own = f"university.{context}.domain"
    for path in modules(context, "domain"):
        for module, names in imports(path):
            top = module.split(".")[0]
            if module == "eventcore":
                wrong.extend(f"{path.name}: eventcore.{n}" for n in names if n not in DOMAIN_NAMES)
            elif module == own or module.startswith(f"{own}."):
                continue
            elif top not in sys.stdlib_module_names and top != "pydantic":
                wrong.append(f"{path.name}: {module}")
    assert wrong == []
    assert {"Aggregate", "DomainEvent", "apply"} <= DOMAIN_NAMES
    assert "UnitOfWork" not in DOMAIN_NAMES


@pytest.mark.parametrize("context", CONTEXTS)
def test_the_application_layer_does_not_reach_into_the_infrastructure(context: str) -> None:
    infrastructure = f"university.{context}.infrastructure"
    wrong = [
        f"{path.name}: {module}"
        for path in modules(context, "application")
        for module, _ in imports(path)
        if module.startswith(infrastructure)
    ]
    assert wrong == []


@pytest.mark.parametrize("context", CONTEXTS)
def test_every_context_has_the_same_layout(context: str) -> None:
    package = ROOT / context
    for part in ("domain", "application", "infrastructure"):
        assert (package / part / "__init__.py").is_file(), part
    assert (package / "contracts.py").is_file()
    assert (package / "bootstrap.py").is_file()


def test_identity_knows_no_context() -> None:
    wrong = [
        f"{path.name}: {module}"
        for path in sorted((ROOT / "identity").rglob("*.py"))
        for module, _ in imports(path)
        if module.startswith("university.") and not module.startswith("university.identity")
    ]
    assert wrong == []
