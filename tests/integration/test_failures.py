"""Failures of the database: typed errors, nothing half-written, recovery afterwards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import anyio
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from eventcore import (
    Aggregate,
    DomainEvent,
    EventStoreTables,
    InvalidStreamIdError,
    NewEvent,
    Repository,
    SchemaError,
    SqlAlchemyEventStore,
    StoreConnectionError,
    StoreError,
    StreamAppend,
    UnitOfWork,
    UnsupportedBackendError,
    WrongExpectedVersionError,
    apply,
    postgres_engine,
    sqlite_engine,
)
from eventcore._messaging._outbox import Settlement
from eventcore.testing.pytest_plugin import (
    postgres_url,
    reachable_postgres_engine,
    throwaway_schema,
)

pytestmark = pytest.mark.anyio


class Noted(DomainEvent, type_name="test_failures.Noted"):
    """Something was noted."""

    text: str


class Notebook(Aggregate, aggregate_type="test_failures.Notebook"):
    """Keeps notes."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        """Add a note."""
        self.record(Noted(text=text))

    @apply
    def _noted(self, event: Noted) -> None:
        self.notes.append(event.text)


def _new(text: str) -> NewEvent:
    return NewEvent.of(Noted(text=text))


@pytest.fixture
async def admin() -> AsyncIterator[AsyncEngine]:
    """A separate engine on the test server (skips, or fails under CI, if unreachable)."""
    engine = await reachable_postgres_engine()
    yield engine
    await engine.dispose()


@pytest.fixture
def app_name() -> str:
    """A unique PostgreSQL `application_name` that tells the store's connections apart."""
    return f"eventcore-failures-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def tagged_store(admin: AsyncEngine, app_name: str) -> AsyncIterator[SqlAlchemyEventStore]:
    """A PostgreSQL store whose connections carry `app_name`."""
    engine = postgres_engine(
        postgres_url(), connect_args={"server_settings": {"application_name": app_name}}
    )
    schema = throwaway_schema()
    store = SqlAlchemyEventStore(engine, tables=EventStoreTables(schema=schema))
    try:
        await store.create_schema()
        yield store
    finally:
        await engine.dispose()
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


async def _kill_connections(admin: AsyncEngine, name: str) -> int:
    """Terminate every server connection named `name`, from another connection."""
    query = text(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name"
    )
    alive = text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name")
    async with admin.connect() as conn:
        killed = len((await conn.execute(query, {"name": name})).all())
        await conn.commit()
        for _ in range(1000):  # termination is asynchronous: wait until they are gone
            remaining = await conn.scalar(alive, {"name": name})
            await conn.commit()  # pg_stat_activity is a snapshot per transaction
            if remaining == 0:
                return killed
            await anyio.sleep(0.01)
    raise AssertionError("the store's connections were not terminated")


# -- dropped connections ----------------------------------------------------------------


@pytest.mark.postgres
async def test_appends_survive_killed_idle_connections(
    admin: AsyncEngine, app_name: str, tagged_store: SqlAlchemyEventStore
) -> None:
    store = tagged_store
    await store.append("notes-1", [_new("a")])
    assert await _kill_connections(admin, app_name) >= 1

    # The kept connection is dead: the store drops it and retries on a fresh one
    # (appends are idempotent by event id, so a retry never doubles an event).
    result = await store.append("notes-1", [_new("b")], expected_version=1)
    assert result.next_expected_version == 2
    assert [r.event for r in await store.read_stream("notes-1")] == [
        Noted(text="a"),
        Noted(text="b"),
    ]


@pytest.mark.postgres
async def test_reads_survive_killed_idle_connections(
    admin: AsyncEngine, app_name: str, tagged_store: SqlAlchemyEventStore
) -> None:
    store = tagged_store
    await store.append("notes-1", [_new("a")])
    await _kill_connections(admin, app_name)
    assert len(await store.read_stream("notes-1")) == 1
    await _kill_connections(admin, app_name)
    assert await store.stream_version("notes-1") == 1
    await _kill_connections(admin, app_name)
    assert [r.version async for r in store.read_all()] == [1]


@pytest.mark.postgres
async def test_a_unit_of_work_after_a_killed_connection(
    admin: AsyncEngine, app_name: str, tagged_store: SqlAlchemyEventStore
) -> None:
    store = tagged_store
    await Repository(Notebook, store).add(_notebook("nb-1", "a"))

    async def add_note(text: str) -> None:
        async with UnitOfWork(store) as uow:
            notebook = await uow.repository(Notebook).get("nb-1")
            notebook.note(text)
            await uow.commit()

    await add_note("b")  # its connection goes back to the pool, where it is killed
    await _kill_connections(admin, app_name)
    with pytest.raises(StoreConnectionError):
        await add_note("c")
    await add_note("c")  # the dead connection was not put back into the pool
    async with UnitOfWork(store) as uow:
        assert (await uow.repository(Notebook).get("nb-1")).notes == ["a", "b", "c"]


@pytest.mark.postgres
async def test_an_unreachable_server_is_a_store_connection_error(admin: AsyncEngine) -> None:
    del admin  # only here to skip when the test server is down
    engine = postgres_engine("postgresql+asyncpg://postgres@127.0.0.1:1/test")
    store = SqlAlchemyEventStore(engine, tables=EventStoreTables(schema=throwaway_schema()))
    try:
        with pytest.raises(StoreConnectionError, match="cannot connect"):
            await store.append("notes-1", [_new("a")])
        with pytest.raises(StoreConnectionError):
            await store.read_stream("notes-1")
        with pytest.raises(StoreConnectionError, match="cannot claim outbox messages"):
            await store.outbox.claim("relay-1", [0], 10, timedelta(seconds=5))
        with pytest.raises(StoreConnectionError, match="cannot settle outbox messages"):
            await store.outbox.settle("relay-1", Settlement([1], []))
    finally:
        await engine.dispose()


def _notebook(notebook_id: str, *notes: str) -> Notebook:
    notebook = Notebook(notebook_id)
    for note in notes:
        notebook.note(note)
    return notebook


# -- nothing half-written ---------------------------------------------------------------


@pytest.mark.postgres
async def test_a_failing_multi_stream_append_writes_nothing(
    postgres_event_store: SqlAlchemyEventStore,
) -> None:
    store = postgres_event_store
    await store.append("notes-2", [_new("existing")])
    appends = [
        StreamAppend("notes-1", [_new("a"), _new("b")], expected_version=0),
        StreamAppend("notes-2", [_new("c")], expected_version=0),  # it is at 1
        StreamAppend("notes-3", [_new("d")]),
    ]
    with pytest.raises(WrongExpectedVersionError) as caught:
        await store.append_streams(appends)
    assert (caught.value.stream_id, caught.value.actual) == ("notes-2", 1)
    assert await store.read_stream("notes-1") == []
    assert len(await store.read_stream("notes-2")) == 1
    assert await store.read_stream("notes-3") == []
    # The same append, corrected, then goes through as a whole.
    appends[1] = StreamAppend("notes-2", appends[1].events, expected_version=1)
    results = await store.append_streams(appends)
    assert [r.next_expected_version for r in results] == [2, 2, 1]


@pytest.mark.postgres
async def test_an_invalid_stream_in_a_multi_stream_append_writes_nothing(
    postgres_event_store: SqlAlchemyEventStore,
) -> None:
    store = postgres_event_store
    appends = [StreamAppend("notes-1", [_new("a")]), StreamAppend("", [_new("b")])]
    with pytest.raises(InvalidStreamIdError):
        await store.append_streams(appends)
    assert await store.stream_version("notes-1") == 0


# -- schema and backend -----------------------------------------------------------------


@pytest.mark.postgres
async def test_missing_tables_are_a_schema_error(admin: AsyncEngine) -> None:
    store = SqlAlchemyEventStore(admin, tables=EventStoreTables(schema=throwaway_schema()))
    with pytest.raises(SchemaError, match="create_schema"):
        await store.append("notes-1", [_new("a")])
    with pytest.raises(SchemaError):
        await store.read_stream("notes-1")
    with pytest.raises(SchemaError):
        await store.stream_version("notes-1")
    with pytest.raises(SchemaError):
        [e async for e in store.read_all()]
    with pytest.raises(SchemaError):
        await Repository(Notebook, store).get("nb-1")
    with pytest.raises(SchemaError):
        await store.snapshots.get("nb-1")
    with pytest.raises(SchemaError):
        async with UnitOfWork(store) as uow:
            await uow.repository(Notebook).get("nb-1")
    with pytest.raises(SchemaError, match="create_schema"):
        await store.outbox.claim("relay-1", [0], 10, timedelta(seconds=5))
    with pytest.raises(SchemaError, match="create_schema"):
        await store.outbox.settle("relay-1", Settlement([1], []))


async def test_missing_tables_on_sqlite_are_a_schema_error(tmp_path: Path) -> None:
    engine = sqlite_engine(tmp_path / "empty.db")
    store = SqlAlchemyEventStore(engine)
    try:
        with pytest.raises(SchemaError, match="create_schema"):
            await store.append("notes-1", [_new("a")])
        with pytest.raises(SchemaError):
            await store.read_stream("notes-1")
        with pytest.raises(SchemaError):
            await store.snapshots.get("notes-1")
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("dialect", "driver"),
    [("postgresql", "psycopg"), ("sqlite", "pysqlite"), ("mysql", "aiomysql")],
)
def test_an_unsupported_engine_is_refused(dialect: str, driver: str) -> None:
    engine = cast(
        AsyncEngine, SimpleNamespace(dialect=SimpleNamespace(name=dialect, driver=driver))
    )
    with pytest.raises(UnsupportedBackendError, match=f"not {dialect}\\+{driver}") as caught:
        SqlAlchemyEventStore(engine)
    assert isinstance(caught.value, StoreError)
