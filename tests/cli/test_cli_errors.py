"""Operational errors end the `eventcore` command in one line, never a traceback.

Exit status 1 for what went wrong out there (no tables, no database, no server, an
application module that fails), 2 for wrong usage (a URL that cannot work).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from eventcore import EventStoreTables, SqlAlchemyEventStore, postgres_engine, sqlite_engine
from eventcore.cli import cli
from eventcore.testing.pytest_plugin import (
    postgres_url,
    reachable_postgres_engine,
    throwaway_schema,
)

PLAIN_URL = postgres_url().replace("postgresql+asyncpg://", "postgresql://", 1)


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, prog_name="eventcore")


def assert_one_line(result: Result, code: int, *fragments: str) -> str:
    """Failed with `code` and one `Error:` line (after the usage, for usage errors)."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    if code == 2:
        assert lines[0].startswith("Usage: "), lines
    else:
        assert len(lines) == 1, lines
    message = lines[-1]
    assert message.startswith("Error: "), message
    for fragment in fragments:
        assert fragment in message, message
    return message


def _create(url: str, tables: EventStoreTables) -> None:
    async def create() -> None:
        engine = sqlite_engine(url) if url.startswith("sqlite") else postgres_engine(url)
        try:
            await SqlAlchemyEventStore(engine, tables=tables).create_schema()
        finally:
            await engine.dispose()

    anyio.run(create)


@pytest.fixture
def schema() -> Iterator[str]:
    """A throwaway PostgreSQL schema with an event store in it (prefix `eventcore_`)."""

    async def check() -> None:
        await (await reachable_postgres_engine()).dispose()

    anyio.run(check)
    name = throwaway_schema()
    _create(PLAIN_URL, EventStoreTables(schema=name))
    yield name

    async def drop() -> None:
        engine = await reachable_postgres_engine()
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        await engine.dispose()

    anyio.run(drop)


READ_ONLY = [
    ["log", "tail"],
    ["projections", "list"],
    ["dead-letters", "list"],
    ["outbox", "status"],
    ["inbox", "dead-letters"],
]


@pytest.mark.postgres
@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
def test_a_wrong_prefix_on_postgresql_says_where_it_looked(schema: str, command: list[str]) -> None:
    result = run("--url", PLAIN_URL, "--schema", schema, "--prefix", "wrong_", *command)
    message = assert_one_line(
        result, 1, "no event store tables with prefix 'wrong_'", f"schema '{schema}'"
    )
    assert f"found event stores with --schema {schema} --prefix eventcore_" in message
    assert f"--schema {schema} --prefix wrong_ schema create" in message
    assert "create_schema()" not in message


@pytest.mark.postgres
def test_a_wrong_schema_on_postgresql_says_where_it_looked() -> None:
    missing = throwaway_schema()
    result = run("--url", PLAIN_URL, "--schema", missing, "log", "tail")
    assert_one_line(result, 1, f"in schema '{missing}'", "pass --prefix (and --schema)")


def test_missing_tables_on_sqlite_name_the_prefixes_found(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    _create(url, EventStoreTables(prefix="registration_"))
    _create(url, EventStoreTables(prefix="records_"))
    result = run("--url", url, "log", "tail")
    message = assert_one_line(result, 1, "no event store tables with prefix 'eventcore_'")
    assert "found event stores with --prefix records_ / --prefix registration_" in message
    assert f"eventcore --url {url} --prefix eventcore_ schema create" in message
    assert run("--url", url, "--prefix", "records_", "log", "tail").exit_code == 0


def test_some_missing_tables_are_added_by_schema_create(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    _create(url, EventStoreTables())

    async def drop_outbox() -> None:
        engine = sqlite_engine(url)
        async with engine.begin() as conn:
            await conn.execute(text("DROP TABLE eventcore_outbox"))
        await engine.dispose()

    anyio.run(drop_outbox)
    result = run("--url", url, "outbox", "status")
    assert_one_line(result, 1, "eventcore_outbox", "add the missing tables with", "schema create")
    assert run("--url", url, "schema", "create").exit_code == 0
    assert run("--url", url, "outbox", "status").exit_code == 0


@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
def test_read_only_commands_do_not_create_a_missing_sqlite_file(
    tmp_path: Path, command: list[str]
) -> None:
    path = tmp_path / "nothing.db"
    result = run("--url", f"sqlite:///{path}", *command)
    assert_one_line(result, 1, f"no SQLite database at {path}", "schema create")
    assert not path.exists()


def test_a_sqlite_url_with_two_slashes_says_what_to_type() -> None:
    result = run("--url", "sqlite://events.db", "log", "tail")
    assert_one_line(result, 2, "write sqlite:///events.db")


def test_an_unknown_url_scheme_is_a_usage_error() -> None:
    assert_one_line(run("--url", "mysql://x/y", "log", "tail"), 2, "unsupported database URL")


@pytest.mark.parametrize(
    "command", [["log", "tail"], ["schema", "create"], ["projections", "list"]], ids=" ".join
)
def test_an_unreachable_server_is_one_line(command: list[str]) -> None:
    result = run("--url", "postgresql://postgres@127.0.0.1:1/test", *command)
    assert_one_line(result, 1, "Connect call failed")


@pytest.mark.postgres
def test_a_missing_database_is_one_line() -> None:
    url = PLAIN_URL.rsplit("/", 1)[0] + "/no_such_database_here"
    assert_one_line(run("--url", url, "schema", "create"), 1, "does not exist")
    assert_one_line(run("--url", url, "log", "tail"), 1, "does not exist")


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current directory, with application modules that fail in various ways."""
    (tmp_path / "explodes.py").write_text("raise RuntimeError('no config file')\n")
    (tmp_path / "broken.py").write_text("def projectors(:\n")
    (tmp_path / "failing.py").write_text("def projectors():\n    raise KeyError('DATABASE_URL')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(tmp_path)
    for name in ("explodes", "broken", "failing"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


@pytest.mark.parametrize(
    ("app", "says"),
    [
        ("explodes", "importing explodes failed: RuntimeError('no config file')"),
        ("broken", "importing broken failed: SyntaxError"),
        ("failing", "calling it failed: KeyError('DATABASE_URL')"),
        ("no_such_module", "cannot import no_such_module"),
    ],
)
def test_a_bad_app_is_one_line(app_dir: Path, app: str, says: str) -> None:
    url = f"sqlite:///{app_dir / 'app.db'}"
    _create(url, EventStoreTables())
    assert_one_line(run("--url", url, "--app", app, "projections", "list"), 1, says)


def test_a_bad_prefix_is_a_usage_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    assert_one_line(run("--url", url, "--prefix", "no-dashes", "log", "tail"), 2, "prefix")
