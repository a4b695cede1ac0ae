"""Run the Python code of README.md and docs/**/*.md, so the documentation cannot rot.

Each page is one test. Its ```python blocks run in page order in one namespace (a
module named after the page) on one event loop, so top-level `await` works, as does
`asyncio.run(main())`. Each page runs in a fresh temporary working directory (on
`sys.path`, so modules the page writes can be imported) and with an empty event
registry (so pages may reuse event type names). Stores and engines left in its namespace
are closed and disposed afterwards.

An HTML comment on the line before a block changes what happens to it:

- `<!-- test: skip -->`: the block is not run (use sparingly).
- `<!-- test: write PATH -->`: the block is written to PATH instead of run.
- `<!-- test: pytest PATH -->`: the block is written to PATH, then pytest runs in a
  subprocess in the working directory (so on every test module written so far) and must
  pass. For pages that show test modules and `conftest.py` files.

Pages of `docs/university/` (the reference application's) keep the default registry:
the application's events are registered when it is first imported.

A page that mentions `DATABASE_URL` gets that environment variable pointing at a fresh,
empty PostgreSQL database, dropped afterwards. If PostgreSQL is unreachable the page is
skipped, or fails under `CI=true`, as with the `postgres_event_store` fixture.
"""

from __future__ import annotations

import ast
import asyncio
import gc
import inspect
import re
import subprocess
import sys
import types
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from eventcore import SqlAlchemyEventStore, SubjectForgotten, default_registry, postgres_engine

# Modules that register event types must be imported before any page runs (see
# _empty_event_registry); importing the plugin imports eventcore.testing, with the
# contract suite's events.
from eventcore.testing.pytest_plugin import postgres_url, reachable_postgres_engine

ROOT = Path(__file__).resolve().parents[2]
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*test:\s*(?P<action>\w+)(?:\s+(?P<arg>\S+))?\s*-->\s*$")
_ACTIONS = {"run", "skip", "write", "pytest"}


@dataclass(frozen=True)
class Block:
    """One ```python block: where it starts, its dedented code and what to do with it."""

    line: int
    """The 1-based line number of the block's first code line."""
    code: str
    action: str = "run"
    target: str | None = None


def parse_blocks(markdown: str) -> list[Block]:
    """Return the page's ```python blocks in order, with their `<!-- test: ... -->` actions."""
    lines = markdown.splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        end = index + 1
        while end < len(lines) and not _closes(lines[end], fence):
            end += 1
        if opening["info"].split()[:1] == ["python"]:
            body = [
                line[len(indent) :] if line.startswith(indent) else line.lstrip()
                for line in lines[index + 1 : end]
            ]
            action, target = _directive_before(lines, index)
            blocks.append(Block(index + 2, "\n".join(body) + "\n", action, target))
        index = end + 1
    return blocks


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return stripped.startswith(fence) and set(stripped) == {fence[0]}


def _directive_before(lines: list[str], index: int) -> tuple[str, str | None]:
    previous = index - 1
    while previous >= 0 and not lines[previous].strip():
        previous -= 1
    if previous < 0 or "<!--" not in lines[previous] or "test:" not in lines[previous]:
        return "run", None
    match = _DIRECTIVE.match(lines[previous])
    if match is None or match["action"] not in _ACTIONS:
        raise ValueError(f"line {previous + 1}: unknown test directive {lines[previous]!r}")
    if match["action"] in ("write", "pytest") and not match["arg"]:
        raise ValueError(f"line {previous + 1}: `test: {match['action']}` needs a path")
    return match["action"], match["arg"]


def _pages() -> list[Path]:
    candidates = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [p for p in candidates if p.is_file() and parse_blocks(p.read_text("utf-8"))]


PAGES = _pages()
SLOW_PAGES = {  # seconds, not milliseconds
    "docs/concepts/concurrency.md",  # 50 concurrent writers on SQLite
    "docs/how-to/testing.md",  # runs the contract suite in a pytest subprocess
}


def _param(page: Path) -> Any:
    name = page.relative_to(ROOT).as_posix()
    marks = [pytest.mark.slow] if name in SLOW_PAGES else []
    return pytest.param(page, id=name, marks=marks)


@pytest.mark.parametrize("page", [_param(page) for page in PAGES])
def test_page(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every block of the page runs without error (and its `assert`s hold)."""
    source = page.read_text("utf-8")
    blocks = parse_blocks(source)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(tmp_path)  # modules the page writes are importable
    # One event loop per page, running only while a block awaits: top-level `await` works,
    # and so does a block that calls `asyncio.run(main())` itself.
    with ExitStack() as stack:
        runner = stack.enter_context(asyncio.Runner())
        if "DATABASE_URL" in source:
            url = runner.run(_create_postgres_database())
            stack.callback(runner.run, _drop_postgres_database(url))
            monkeypatch.setenv("DATABASE_URL", url)
        namespace = stack.enter_context(_page_module(page, tmp_path))
        if not _uses_the_reference_application(page):
            stack.enter_context(_empty_event_registry(page, tmp_path))
        stack.callback(runner.run, _dispose_engines(namespace))
        for block in blocks:
            _run_block(runner, page, block, namespace, tmp_path)
    # Report objects the page leaked (say, an unclosed connection) in this page's test.
    gc.collect()
    assert blocks


def _run_block(
    runner: asyncio.Runner, page: Path, block: Block, namespace: dict[str, Any], cwd: Path
) -> None:
    if block.action == "skip":
        return
    if block.action in ("write", "pytest"):
        assert block.target is not None
        target = cwd / block.target
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.code, "utf-8")
        if block.action == "pytest":
            _run_pytest(cwd)
        return
    # Leading newlines make tracebacks point at the right line of the Markdown file.
    padded = "\n" * (block.line - 1) + block.code
    code = compile(padded, str(page), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)
    if code.co_flags & inspect.CO_COROUTINE:
        runner.run(result)


def _run_pytest(cwd: Path) -> None:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"pytest failed in {cwd}:\n{output}"
    assert " passed" in output, output


def _module_name(page: Path) -> str:
    return "docs_page_" + re.sub(r"\W", "_", page.relative_to(ROOT).as_posix())


@contextmanager
def _page_module(page: Path, cwd: Path) -> Iterator[dict[str, Any]]:
    """A real module for the page, so annotations and pydantic resolve names in it.

    Afterwards the page's module and the modules it imported from `cwd` are forgotten.
    """
    name = _module_name(page)
    module = types.ModuleType(name)
    sys.modules[name] = module
    try:
        yield module.__dict__
    finally:
        for stale in [name, *_modules_under(cwd)]:
            del sys.modules[stale]


def _modules_under(directory: Path) -> list[str]:
    found = []
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve().is_relative_to(directory.resolve()):
            found.append(name)
    return found


def _uses_the_reference_application(page: Path) -> bool:
    """Pages of `docs/university/` run the reference application, whose event classes
    are registered once, when it is imported: those pages keep the default registry."""
    return page.is_relative_to(ROOT / "docs" / "university")


@contextmanager
def _empty_event_registry(page: Path, cwd: Path) -> Iterator[None]:
    """Give the page an empty default registry, and restore the previous one afterwards.

    Event classes that a module imported for the first time by the page registered
    would be lost with the page's own: that fails the page (import such modules above).
    Modules the page wrote to its working directory are the page's own.
    """
    # SubjectForgotten is registered again by every store given a key provider.
    own = {_module_name(page), *_modules_under(cwd), SubjectForgotten.__module__}
    state = vars(default_registry)
    saved = dict(state)
    for key, value in saved.items():
        if isinstance(value, dict):
            state[key] = {}
    try:
        yield
        own.update(_modules_under(cwd))
        foreign = {
            value.__module__
            for table in state.values()
            if isinstance(table, dict)
            for value in table.values()
            if isinstance(value, type) and value.__module__ not in own
        }
        assert not foreign, (
            f"the page imported {sorted(foreign)} for the first time, whose event classes "
            "would vanish with the page's registry: import them at the top of test_docs.py"
        )
    finally:
        state.clear()
        state.update(saved)


async def _dispose_engines(namespace: dict[str, Any]) -> None:
    """Close the stores and dispose of the engines a page left open."""
    engines: dict[int, AsyncEngine] = {}
    for value in list(namespace.values()):
        if isinstance(value, SqlAlchemyEventStore):
            await value.close()
            value = value.engine
        if isinstance(value, AsyncEngine):
            engines[id(value)] = value
    for engine in engines.values():
        await engine.dispose()


async def _create_postgres_database() -> str:
    """Create an empty database for one page and return its URL (skip if unreachable)."""
    admin = await reachable_postgres_engine()
    name = f"ec_docs_{uuid.uuid4().hex[:12]}"
    try:
        async with admin.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    return make_url(postgres_url()).set(database=name).render_as_string(hide_password=False)


async def _drop_postgres_database(url: str) -> None:
    admin = postgres_engine(postgres_url(), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            name = make_url(url).database
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


def test_parse_blocks_reads_fences_directives_and_indentation() -> None:
    """The collector finds every kind of block the pages use, at the right lines."""
    markdown = "\n".join(
        [
            "# Title",  # 1
            "```python",  # 2
            "x = 1",  # 3
            "```",  # 4
            "<!-- test: skip -->",  # 5
            "```python",  # 6
            "boom()",  # 7
            "```",  # 8
            "```text",  # 9
            "```python inside a text block is not code",  # 10
            "```",  # 11
            '!!! note "Admonition"',  # 12
            "    <!-- test: pytest test_x.py -->",  # 13
            "    ```python",  # 14
            "    def test_x() -> None:",  # 15
            "        assert True",  # 16
            "    ```",  # 17
        ]
    )
    blocks = parse_blocks(markdown)
    assert [(b.line, b.action, b.target) for b in blocks] == [
        (3, "run", None),
        (7, "skip", None),
        (15, "pytest", "test_x.py"),
    ]
    assert blocks[2].code == "def test_x() -> None:\n    assert True\n"


def test_parse_blocks_rejects_unknown_directives() -> None:
    """A misspelt directive fails loudly instead of silently running (or not) a block."""
    with pytest.raises(ValueError, match="unknown test directive"):
        parse_blocks("<!-- test: skpi -->\n```python\nx = 1\n```\n")


def test_readme_and_docs_pages_are_collected() -> None:
    """README.md and the guide's pages with code are all found."""
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    assert {"README.md", "docs/index.md", "docs/getting-started.md"} <= names
    # Every concept page shows runnable code, so every one of them must be collected.
    concepts = {p.relative_to(ROOT).as_posix() for p in (ROOT / "docs/concepts").glob("*.md")}
    assert len(concepts) >= 14
    assert concepts <= names
