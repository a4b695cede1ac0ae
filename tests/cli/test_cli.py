"""The `eventcore` command line, through click's CliRunner, on SQLite and PostgreSQL.

Each test gets a fresh database: a SQLite file, or a throwaway PostgreSQL schema (the
read model of `tests/cli/cli_app.py` goes in it too). The entry point itself runs in a
subprocess, stopped by a signal.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import click
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from eventcore import (
    DomainEvent,
    EventStoreTables,
    LogPosition,
    NewEvent,
    SqlAlchemyEventStore,
    postgres_engine,
    sqlite_engine,
)
from eventcore.cli import cli
from eventcore.testing.pytest_plugin import (
    postgres_url,
    reachable_postgres_engine,
    throwaway_schema,
)
from tests.cli.cli_app import SCHEMA_ENV, ItemAdded, ItemRemoved, Picky, read_model

APP = "tests.cli.cli_app"
ROOT = Path(__file__).resolve().parents[2]
INVENTORY, LEDGER = "cli_test.inventory", "cli_test.ledger"
T = TypeVar("T")


@dataclass(frozen=True)
class Database:
    """One test's database, as the command line and the test's own store see it."""

    url: str
    schema: str | None = None

    @property
    def args(self) -> list[str]:
        return ["--url", self.url, *(["--schema", self.schema] if self.schema else [])]

    def engine(self) -> AsyncEngine:
        if self.url.startswith("sqlite"):
            return sqlite_engine(self.url.split(":///", 1)[1])
        return postgres_engine(self.url)

    def using(self, work: Callable[[SqlAlchemyEventStore], Awaitable[T]]) -> T:
        """Run `work` with a store on this database, on an event loop of its own."""

        async def with_store() -> T:
            engine = self.engine()
            store = SqlAlchemyEventStore(engine, tables=EventStoreTables(schema=self.schema))
            try:
                return await work(store)
            finally:
                await store.close()
                await engine.dispose()

        return anyio.run(with_store)


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'cli.db'}")


@pytest.fixture
def postgres_db(monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """A throwaway schema; the URL is in the plain `postgresql://` form users type."""

    async def check() -> None:
        await (await reachable_postgres_engine()).dispose()

    anyio.run(check)
    schema = throwaway_schema()
    monkeypatch.setenv(SCHEMA_ENV, schema)
    url = postgres_url().replace("postgresql+asyncpg://", "postgresql://", 1)
    database = Database(url, schema)
    yield database

    async def drop(store: SqlAlchemyEventStore) -> None:
        async with store.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))

    database.using(drop)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest) -> Database:
    database: Database = request.getfixturevalue(f"{request.param}_db")
    return database


def invoke(db: Database, *args: str, app: str | None = APP, input: str | None = None) -> Result:
    """Run `eventcore [--url ... --app ...] ARGS` in this process."""
    options = [*db.args, *(["--app", app] if app else [])]
    return CliRunner().invoke(
        cli, [*options, *args], input=input, catch_exceptions=False, prog_name="eventcore"
    )


def prepare(db: Database) -> None:
    """Create the event store's tables and the test application's read model."""

    async def create(store: SqlAlchemyEventStore) -> None:
        await store.create_schema()
        async with store.engine.begin() as conn:
            await conn.run_sync(read_model(db.schema).create_all)

    db.using(create)


def append(db: Database, stream_id: str, *events: DomainEvent) -> list[int]:
    """Append to one stream; return the events' global positions."""

    async def write(store: SqlAlchemyEventStore) -> list[int]:
        result = await store.append(stream_id, [NewEvent.of(e) for e in events])
        return list(result.global_positions)

    return db.using(write)


def seed(db: Database) -> list[int]:
    """Two shelves, one emptied again: four events; return their positions."""
    prepare(db)
    first = append(db, "shelf-1", ItemAdded(sku="apple", quantity=3))
    second = append(db, "shelf-2", ItemAdded(sku="pear", quantity=5))
    third = append(db, "shelf-3", ItemAdded(sku="plum", quantity=1), ItemRemoved(sku="plum"))
    return first + second + third


def wait_until_readable(db: Database) -> None:
    """Wait until the whole log is readable (on PostgreSQL: no older transaction open)."""

    async def wait(store: SqlAlchemyEventStore) -> None:
        last = await store.log_position_of(await store.log_head())
        assert last is not None
        before = LogPosition(last.transaction_id, last.global_position - 1)
        delay = 0.005
        while not await store.read_log(before, limit=1):
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.1)

    db.using(wait)


def read_rows(db: Database, table: str) -> list[tuple[Any, ...]]:
    async def fetch(store: SqlAlchemyEventStore) -> list[tuple[Any, ...]]:
        found = read_model(db.schema).tables
        target = found[f"{db.schema}.{table}" if db.schema else table]
        async with store.engine.connect() as conn:
            rows = (await conn.execute(select(target).order_by(*target.primary_key))).all()
        return [tuple(row) for row in rows]

    return db.using(fetch)


def checkpoints(db: Database) -> dict[str, LogPosition]:
    async def load(store: SqlAlchemyEventStore) -> dict[str, LogPosition]:
        return await store.load_checkpoints()

    return db.using(load)


def assert_one_line_error(result: Result, code: int, *fragments: str) -> None:
    """Failed with `code` and a one-line message (after the usage, for usage errors)."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    if code == 2:
        assert lines[0].startswith("Usage: "), lines
    message = lines[-1]  # after the usage, or a progress bar's label
    assert message.startswith("Error: "), message
    for fragment in fragments:
        assert fragment in message, message


# -- help ------------------------------------------------------------------------------


def _command_paths(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _command_paths(sub, (*path, name))


def test_every_command_has_help() -> None:
    paths = list(_command_paths(cli))
    assert {("schema", "create"), ("log", "tail"), ("projections", "list")} <= set(paths)
    assert {("projections", "reset"), ("projections", "catch-up"), ("projections", "run")} <= set(
        paths
    )
    assert {("dead-letters", "list"), ("dead-letters", "replay")} <= set(paths)
    for path in paths:
        result = CliRunner().invoke(cli, [*path, "--help"], prog_name="eventcore")
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith(f"Usage: eventcore {' '.join(path)}".rstrip())
        assert len(result.stdout.splitlines()) > 4, path  # a description, not just usage


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"], prog_name="eventcore")
    assert result.exit_code == 0
    assert result.stdout.strip() == "eventcore, version 0.1.0"


def test_main_explains_that_click_is_missing() -> None:
    code = (
        "import sys\n"
        "sys.modules['click'] = None\n"
        "import eventcore\n"
        "from eventcore.cli import main\n"
        "main(['--help'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "eventcore: the command line needs click: pip install 'eventcore-es[cli]'"
    )


# -- schema ----------------------------------------------------------------------------


def test_schema_create_creates_the_tables_then_finds_them_up_to_date(db: Database) -> None:
    first = invoke(db, "schema", "create")
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines() == [
        "created tables: eventcore_events, eventcore_snapshots, eventcore_checkpoints, "
        "eventcore_dead_letters, eventcore_projections, eventcore_deadlines, eventcore_outbox, "
        "eventcore_outbox_lanes, eventcore_outbox_relays, eventcore_inbox, "
        "eventcore_inbox_failures, eventcore_data_keys, eventcore_idempotency_keys"
    ]
    again = invoke(db, "schema", "create")
    assert again.exit_code == 0, again.output
    assert again.stdout == "the schema is up to date\n"
    assert append(db, "shelf-1", ItemAdded(sku="apple", quantity=1)) == [1]


def test_schema_create_honours_the_prefix(sqlite_db: Database) -> None:
    result = invoke(sqlite_db, "--prefix", "shop_", "schema", "create")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("created tables: shop_events, shop_snapshots")


def test_schema_create_adds_missing_tables_and_indexes(sqlite_db: Database) -> None:
    prepare(sqlite_db)

    async def remove_some(store: SqlAlchemyEventStore) -> None:
        async with store.engine.begin() as conn:
            await conn.execute(text("DROP INDEX eventcore_events_event_id_key"))
            await conn.execute(text("DROP TABLE eventcore_dead_letters"))

    sqlite_db.using(remove_some)
    result = invoke(sqlite_db, "schema", "create")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "created tables: eventcore_dead_letters",
        "created indexes: eventcore_events_event_id_key",
    ]


def test_schema_create_reports_columns_it_cannot_add(sqlite_db: Database) -> None:
    prepare(sqlite_db)

    async def remove_column(store: SqlAlchemyEventStore) -> None:
        async with store.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE eventcore_checkpoints DROP COLUMN updated_at"))

    sqlite_db.using(remove_column)
    result = invoke(sqlite_db, "schema", "create")
    assert_one_line_error(result, 1, "eventcore_checkpoints lacks updated_at", "migrate")


# -- log tail --------------------------------------------------------------------------


def test_log_tail_prints_the_log_in_commit_order(db: Database) -> None:
    p = seed(db)
    result = invoke(db, "log", "tail", app=None)  # no event classes needed
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f'{p[0]}  shelf-1@1  test_cli.ItemAdded  {{"sku":"apple","quantity":3}}',
        f'{p[1]}  shelf-2@1  test_cli.ItemAdded  {{"sku":"pear","quantity":5}}',
        f'{p[2]}  shelf-3@1  test_cli.ItemAdded  {{"sku":"plum","quantity":1}}',
        f'{p[3]}  shelf-3@2  test_cli.ItemRemoved  {{"sku":"plum"}}',
    ]


def test_log_tail_filters_and_limits(db: Database) -> None:
    p = seed(db)
    after = invoke(db, "log", "tail", "--after", str(p[0]), "--limit", "2")
    assert [line.split()[1] for line in after.stdout.splitlines()] == ["shelf-2@1", "shelf-3@1"]
    removed = invoke(db, "log", "tail", "--type", "test_cli.ItemRemoved")
    assert [line.split()[1] for line in removed.stdout.splitlines()] == ["shelf-3@2"]
    assert invoke(db, "log", "tail", "--after", "head").stdout == ""
    assert invoke(db, "log", "tail", "--stream-type", "nothing").stdout == ""


def test_log_tail_json(db: Database) -> None:
    p = seed(db)
    result = invoke(db, "log", "tail", "--json", "-n", "1")
    (line,) = result.stdout.splitlines()
    event = json.loads(line)
    assert event["global_position"] == p[0]
    assert (event["stream_id"], event["version"], event["event_type"]) == (
        "shelf-1",
        1,
        "test_cli.ItemAdded",
    )
    assert event["data"] == {"sku": "apple", "quantity": 3}
    assert event["schema_version"] == 1
    assert event["metadata"] == {}
    assert (event["transaction_id"] > 0) is (db.schema is not None)  # xid on PostgreSQL


def test_log_tail_refuses_a_position_without_an_event(sqlite_db: Database) -> None:
    seed(sqlite_db)
    result = invoke(sqlite_db, "log", "tail", "--after", "99")
    assert_one_line_error(result, 1, "no event at global position 99")
    result = invoke(sqlite_db, "log", "tail", "--after", "yesterday")
    assert_one_line_error(result, 2, "neither a global position")


def _keep_appending(db: Database, stop: threading.Event) -> None:
    async def appending(store: SqlAlchemyEventStore) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            await store.append(f"live-{n}", [NewEvent.of(ItemAdded(sku="live", quantity=n))])
            await anyio.sleep(0.02)

    db.using(appending)


def test_log_tail_follow_prints_events_appended_later(db: Database) -> None:
    seed(db)
    stop = threading.Event()
    writer = threading.Thread(target=_keep_appending, args=(db, stop))
    writer.start()
    try:  # from the head on: only events appended while it runs, until --limit
        result = invoke(db, "log", "tail", "--follow", "--after", "head", "--limit", "3")
    finally:
        stop.set()
        writer.join()
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    quantities = [json.loads(line.split("  ")[3])["quantity"] for line in lines]
    assert quantities == list(range(quantities[0], quantities[0] + 3))
    assert all("shelf" not in line for line in lines)


# -- projections -----------------------------------------------------------------------


def _statuses(db: Database, *options: str) -> dict[str, dict[str, Any]]:
    result = invoke(db, *options, "projections", "list", "--json")
    assert result.exit_code == 0, result.output
    return {status["name"]: status for status in json.loads(result.stdout)}


def test_projections_list_shows_checkpoint_head_and_lag(db: Database) -> None:
    p = seed(db)
    wait_until_readable(db)  # else PostgreSQL may not show the new events as pending yet
    before = _statuses(db)
    assert before[INVENTORY]["checkpoint"] == {"transaction_id": 0, "global_position": 0}
    assert before[INVENTORY]["head"] == p[-1]
    assert before[INVENTORY]["pending"] is True
    assert before[INVENTORY]["lag_seconds"] >= 0
    assert invoke(db, "projections", "catch-up").exit_code == 0
    after = _statuses(db)
    assert after[INVENTORY]["checkpoint"]["global_position"] == p[-1]
    assert (after[LEDGER]["pending"], after[LEDGER]["lag_seconds"]) == (False, 0.0)
    table = invoke(db, "projections", "list").stdout.splitlines()
    assert table[0].split() == ["NAME", "CHECKPOINT", "HEAD", "PENDING", "LAG"]
    assert [row.split()[0] for row in table[1:]] == [INVENTORY, LEDGER]
    assert table[1].split()[-2:] == ["no", "0.0s"]


def test_projections_list_without_app_shows_the_checkpoints(sqlite_db: Database) -> None:
    p = seed(sqlite_db)
    assert "no projections yet" in invoke(sqlite_db, "projections", "list", app=None).stdout
    assert invoke(sqlite_db, "projections", "catch-up", LEDGER).exit_code == 0
    result = invoke(sqlite_db, "projections", "list", app=None)
    assert result.stdout.splitlines()[1].split() == [LEDGER, str(p[-1]), str(p[-1]), "-", "-"]
    # With --app naming only the inventory, the ledger's checkpoint is listed as other.
    statuses = _statuses(sqlite_db, "--app", f"{APP}:Inventory")
    assert set(statuses) == {INVENTORY, LEDGER}
    assert "pending" not in statuses[LEDGER]


def test_app_may_name_a_list_a_function_a_class_or_a_module(sqlite_db: Database) -> None:
    prepare(sqlite_db)
    forms = {
        APP: {INVENTORY, LEDGER},
        f"{APP}:projectors": {INVENTORY, LEDGER},
        f"{APP}:ledger_only": {LEDGER},
        f"{APP}:Picky": {"cli_test.picky"},
        f"{APP}:broken": {"cli_test.broken"},
    }
    for spec, names in forms.items():
        assert set(_statuses(sqlite_db, "--app", spec)) == names, spec


def test_app_errors(sqlite_db: Database) -> None:
    prepare(sqlite_db)
    bad = invoke(sqlite_db, "projections", "list", app=f"{APP}:not_projectors")
    assert_one_line_error(bad, 1, "must give Projector instances", "'Inventory'")
    missing = invoke(sqlite_db, "projections", "list", app="tests.cli.no_such_module")
    assert_one_line_error(missing, 1, "cannot import tests.cli.no_such_module")
    unknown = invoke(sqlite_db, "projections", "list", app=f"{APP}:nothing")
    assert_one_line_error(unknown, 2, "has no 'nothing'")
    needed = invoke(sqlite_db, "projections", "catch-up", app=None)
    assert_one_line_error(needed, 2, "give --app or set EVENTCORE_APP")


def test_catch_up_projects_into_the_read_model(db: Database) -> None:
    p = seed(db)
    result = invoke(db, "projections", "catch-up")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"caught up: 8 events applied ({INVENTORY}, {LEDGER})\n"
    assert "catching up" in result.stderr  # the progress bar (just its label off a terminal)
    assert read_rows(db, "cli_test_items") == [("shelf-1", "apple", 3), ("shelf-2", "pear", 5)]
    assert [row[0] for row in read_rows(db, "cli_test_ledger")] == p
    again = invoke(db, "projections", "catch-up")
    assert again.stdout == f"caught up: 0 events applied ({INVENTORY}, {LEDGER})\n"


def test_catch_up_of_named_projections(sqlite_db: Database) -> None:
    seed(sqlite_db)
    result = invoke(sqlite_db, "projections", "catch-up", LEDGER)
    assert result.stdout == f"caught up: 4 events applied ({LEDGER})\n"
    assert read_rows(sqlite_db, "cli_test_items") == []
    unknown = invoke(sqlite_db, "projections", "catch-up", "cli_test.nope")
    assert_one_line_error(unknown, 2, "no projector named cli_test.nope", INVENTORY)


def test_a_projector_that_gives_up_fails_in_one_line(sqlite_db: Database) -> None:
    seed(sqlite_db)
    result = invoke(sqlite_db, "projections", "catch-up", app=f"{APP}:broken")
    assert_one_line_error(
        result, 1, "projector 'cli_test.broken' stopped", "shelf-1", "cannot handle apple"
    )


def test_reset_asks_then_deletes_the_checkpoint(db: Database) -> None:
    seed(db)
    invoke(db, "projections", "catch-up")
    declined = invoke(db, "projections", "reset", LEDGER, input="n\n")
    assert declined.exit_code == 1
    assert "Aborted" in declined.output
    assert LEDGER in checkpoints(db)
    accepted = invoke(db, "projections", "reset", LEDGER, input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert f"reset {LEDGER}" in accepted.stdout
    assert set(checkpoints(db)) == {INVENTORY}
    forced = invoke(db, "projections", "reset", INVENTORY, "--yes")
    assert forced.exit_code == 0, forced.output
    assert checkpoints(db) == {}
    again = invoke(db, "projections", "reset", INVENTORY, "--yes")
    assert_one_line_error(again, 1, "no checkpoint named 'cli_test.inventory'")


def _wait_for_checkpoints(
    db: Database, process: subprocess.Popen[str], names: list[str], head: int
) -> None:
    """Wait until each named projection has processed the log up to `head`."""
    while True:
        assert process.poll() is None, process.communicate()
        found = checkpoints(db)
        if all(name in found and found[name].global_position == head for name in names):
            return
        threading.Event().wait(0.05)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backend", "signum"),
    [
        pytest.param("sqlite", signal.SIGTERM, id="sqlite-SIGTERM"),
        pytest.param("postgres", signal.SIGINT, id="postgres-SIGINT", marks=pytest.mark.postgres),
    ],
)
def test_the_entry_point_runs_projections_until_signalled(
    backend: str, signum: signal.Signals, request: pytest.FixtureRequest
) -> None:
    db: Database = request.getfixturevalue(f"{backend}_db")
    p = seed(db)
    script = Path(sys.executable).with_name("eventcore")
    command = [str(script), *db.args, "--app", APP, "projections", "run"]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for_checkpoints(db, process, [INVENTORY, LEDGER], p[-1])
        later = append(db, "shelf-4", ItemAdded(sku="fig", quantity=2))  # followed live
        _wait_for_checkpoints(db, process, [INVENTORY, LEDGER], later[-1])
        process.send_signal(signum)
        _, err = process.communicate()
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert err.splitlines() == [f"running {INVENTORY}, {LEDGER}; stop with Ctrl-C", "stopped"]
    assert [row[0] for row in read_rows(db, "cli_test_items")] == ["shelf-1", "shelf-2", "shelf-4"]


# -- dead letters ----------------------------------------------------------------------


@pytest.fixture
def parked(sqlite_db: Database) -> Iterator[Database]:
    """The picky projector has caught up, parking `poison` (and its stream's later event)."""
    Picky.refusing = True
    prepare(sqlite_db)
    append(sqlite_db, "shelf-1", ItemAdded(sku="apple", quantity=1))
    append(
        sqlite_db, "shelf-2", ItemAdded(sku="poison", quantity=1), ItemAdded(sku="x", quantity=2)
    )
    result = invoke(sqlite_db, "projections", "catch-up", app=f"{APP}:picky")
    assert result.exit_code == 0, result.output
    yield sqlite_db
    Picky.refusing = True


def test_dead_letters_list(parked: Database) -> None:
    result = invoke(parked, "dead-letters", "list", app=None)
    assert result.exit_code == 0, result.output
    header, first, second = result.stdout.splitlines()
    assert header.split()[:5] == ["PROJECTOR", "POSITION", "EVENT", "TYPE", "ATTEMPTS"]
    assert first.split()[:5] == ["cli_test.picky", "2", "shelf-2@1", "test_cli.ItemAdded", "4"]
    assert "poison is refused" in first
    assert second.split()[:5] == ["cli_test.picky", "3", "shelf-2@2", "test_cli.ItemAdded", "0"]
    as_json = invoke(parked, "dead-letters", "list", "cli_test.picky", "--json", app=None)
    letters = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [(d["stream_id"], d["version"], d["attempts"]) for d in letters] == [
        ("shelf-2", 1, 4),
        ("shelf-2", 2, 0),
    ]
    none = invoke(parked, "dead-letters", "list", "cli_test.other", app=None)
    assert none.stdout == "no dead letters\n"


def test_dead_letters_replay(parked: Database) -> None:
    again = invoke(parked, "dead-letters", "replay", "cli_test.picky", app=f"{APP}:picky")
    assert again.exit_code == 1  # still refused: both stay parked
    assert again.stdout == "replayed 0 events of cli_test.picky; 2 still parked\n"
    Picky.refusing = False
    fixed = invoke(parked, "dead-letters", "replay", "cli_test.picky", app=f"{APP}:picky")
    assert fixed.exit_code == 0, fixed.output
    assert fixed.stdout == "replayed 2 events of cli_test.picky; 0 still parked\n"
    assert invoke(parked, "dead-letters", "list", app=None).stdout == "no dead letters\n"


def test_dead_letters_discard(parked: Database) -> None:
    letters = invoke(parked, "dead-letters", "list", "--json", app=None).stdout.splitlines()
    second = json.loads(letters[1])["event_id"]
    one = invoke(parked, "dead-letters", "discard", "cli_test.picky", "--event", second, "-y")
    assert one.stdout == "discarded 1 dead letters of cli_test.picky\n"
    declined = invoke(parked, "dead-letters", "discard", "cli_test.picky", input="n\n")
    assert declined.exit_code == 1
    rest = invoke(parked, "dead-letters", "discard", "cli_test.picky", "--stream", "shelf-2", "-y")
    assert rest.stdout == "discarded 1 dead letters of cli_test.picky\n"
    assert invoke(parked, "dead-letters", "list", app=None).stdout == "no dead letters\n"


# -- connection errors -----------------------------------------------------------------


def test_connection_errors_are_one_line(sqlite_db: Database, tmp_path: Path) -> None:
    no_url = CliRunner().invoke(cli, ["log", "tail"], env={"EVENTCORE_DATABASE_URL": None})
    assert_one_line_error(no_url, 2, "give --url or set EVENTCORE_DATABASE_URL")
    scheme = CliRunner().invoke(cli, ["--url", "mysql://x/y", "log", "tail"])
    assert_one_line_error(scheme, 2, "unsupported database URL scheme 'mysql'")
    schema = invoke(sqlite_db, "--schema", "x", "log", "tail")
    assert_one_line_error(schema, 2, "--schema is for PostgreSQL")
    no_file = invoke(sqlite_db, "log", "tail")
    assert_one_line_error(no_file, 1, "no SQLite database at", "schema create")
    Path(sqlite_db.url.split(":///", 1)[1]).touch()
    no_tables = invoke(sqlite_db, "log", "tail")
    assert_one_line_error(no_tables, 1, "no event store tables", "schema create")
    refused = CliRunner().invoke(cli, ["--url", "postgresql://nobody@127.0.0.1:1/x", "log", "tail"])
    assert_one_line_error(refused, 1)


def test_the_url_comes_from_the_environment(sqlite_db: Database) -> None:
    seed(sqlite_db)
    env = {"EVENTCORE_DATABASE_URL": sqlite_db.url, "EVENTCORE_APP": APP}
    result = CliRunner().invoke(cli, ["projections", "list", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert {s["name"] for s in json.loads(result.stdout)} == {INVENTORY, LEDGER}


# -- rebuilds (blue/green) -------------------------------------------------------------

REBUILD_APP = "tests.cli.cli_rebuild_app"
INVENTORY_V2 = f"{INVENTORY}@v2"


def _prepare_v2(db: Database) -> None:
    """Create version 2's table of the inventory (next to the tables of `prepare`)."""
    from tests.cli.cli_rebuild_app import read_model_v2

    async def create(store: SqlAlchemyEventStore) -> None:
        async with store.engine.begin() as conn:
            await conn.run_sync(read_model_v2(db.schema).create_all)

    db.using(create)


def _v2_rows(db: Database) -> list[tuple[Any, ...]]:
    from tests.cli.cli_rebuild_app import read_model_v2

    async def fetch(store: SqlAlchemyEventStore) -> list[tuple[Any, ...]]:
        table = next(iter(read_model_v2(db.schema).tables.values()))
        async with store.engine.connect() as conn:
            rows = (await conn.execute(select(table).order_by(table.c.stream_id))).all()
        return [tuple(row) for row in rows]

    return db.using(fetch)


def _active(db: Database) -> dict[str, int]:
    async def load(store: SqlAlchemyEventStore) -> dict[str, int]:
        return await store.active_projection_versions()

    return db.using(load)


@pytest.fixture
def failing_v2() -> Iterator[type[Any]]:
    """Version 2 of the inventory; any sku set in `failing_on` fails (reset afterwards)."""
    from tests.cli.cli_rebuild_app import InventoryV2

    yield InventoryV2
    InventoryV2.failing_on = None


def test_rebuild_builds_the_new_version_then_switches_to_it(db: Database) -> None:
    seed(db)
    _prepare_v2(db)
    assert invoke(db, "projections", "catch-up").exit_code == 0  # version 1 serves
    served = read_rows(db, "cli_test_items")
    result = invoke(db, "projections", "rebuild", INVENTORY, app=REBUILD_APP)
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"rebuilt {INVENTORY_V2}: 4 events applied; version 2 of {INVENTORY} is active (was 1)\n"
    )
    assert f"rebuilding {INVENTORY_V2}" in result.stderr  # the progress bar's label
    assert _v2_rows(db) == [("shelf-1", "3 x apple", 3), ("shelf-2", "5 x pear", 5)]
    assert read_rows(db, "cli_test_items") == served  # version 1 untouched
    assert _active(db) == {INVENTORY: 2}
    again = invoke(db, "projections", "rebuild", INVENTORY, app=REBUILD_APP)
    assert_one_line_error(again, 1, "version 2 of 'cli_test.inventory' is the active one")


def test_projections_list_shows_the_active_versions(sqlite_db: Database) -> None:
    seed(sqlite_db)
    _prepare_v2(sqlite_db)
    statuses = _statuses(sqlite_db, "--app", REBUILD_APP)
    assert {n: (s["version"], s["active"]) for n, s in statuses.items()} == {
        INVENTORY: (1, True),
        INVENTORY_V2: (2, False),
    }
    table = invoke(sqlite_db, "projections", "list", app=REBUILD_APP).stdout.splitlines()
    assert [row.split()[0] for row in table[1:3]] == [INVENTORY, INVENTORY_V2]
    assert table[3:] == ["", "NAME                ACTIVE", f"{INVENTORY}  v1"]
    invoke(sqlite_db, "projections", "rebuild", INVENTORY, app=REBUILD_APP)
    after = _statuses(sqlite_db, "--app", REBUILD_APP)
    assert (after[INVENTORY]["active"], after[INVENTORY_V2]["active"]) == (False, True)
    without_app = invoke(sqlite_db, "projections", "list", app=None).stdout.splitlines()
    assert without_app[-2:] == ["NAME                ACTIVE", f"{INVENTORY}  v2"]
    ledger_too = invoke(sqlite_db, "projections", "list").stdout.splitlines()
    assert ledger_too[-2:] == [f"{INVENTORY}  v2", "cli_test.ledger     v1"]


def test_an_interrupted_rebuild_resumes_and_can_wait_to_switch(
    sqlite_db: Database, failing_v2: Any
) -> None:
    seed(sqlite_db)
    _prepare_v2(sqlite_db)
    failing_v2.failing_on = "pear"  # the second event
    failed = invoke(
        sqlite_db, "projections", "rebuild", INVENTORY, "--batch-size", "1", app=REBUILD_APP
    )
    assert_one_line_error(failed, 1, f"projector '{INVENTORY_V2}' stopped", "cannot label pear")
    assert checkpoints(sqlite_db)[INVENTORY_V2].global_position == 1
    assert _v2_rows(sqlite_db) == [("shelf-1", "3 x apple", 3)]
    assert _active(sqlite_db) == {}
    failing_v2.failing_on = None
    resumed = invoke(
        sqlite_db, "projections", "rebuild", INVENTORY, "--no-activate", app=REBUILD_APP
    )
    assert resumed.exit_code == 0, resumed.output
    assert resumed.stdout == (
        f"rebuilt {INVENTORY_V2}: 3 events applied; not activated: version 1 of "
        f"{INVENTORY} serves\n"
    )
    assert _v2_rows(sqlite_db) == [("shelf-1", "3 x apple", 3), ("shelf-2", "5 x pear", 5)]
    assert _active(sqlite_db) == {}
    switched = invoke(sqlite_db, "projections", "rebuild", INVENTORY_V2, app=REBUILD_APP)
    assert switched.stdout.startswith(f"rebuilt {INVENTORY_V2}: 0 events applied; version 2")
    assert _active(sqlite_db) == {INVENTORY: 2}


def test_activate_switches_back_to_a_built_version(sqlite_db: Database) -> None:
    seed(sqlite_db)
    _prepare_v2(sqlite_db)
    invoke(sqlite_db, "projections", "catch-up", INVENTORY)
    invoke(sqlite_db, "projections", "rebuild", INVENTORY, app=REBUILD_APP)
    back = invoke(sqlite_db, "projections", "activate", INVENTORY, "1", app=None)
    assert back.exit_code == 0, back.output
    assert back.stdout == f"version 1 of {INVENTORY} is active (was 2)\n"
    assert _active(sqlite_db) == {INVENTORY: 1}
    unbuilt = invoke(sqlite_db, "projections", "activate", INVENTORY, "3", app=None)
    assert_one_line_error(unbuilt, 1, "version 3 of cli_test.inventory has no checkpoint")
    assert _active(sqlite_db) == {INVENTORY: 1}
