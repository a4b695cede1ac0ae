"""Connections lost: the server terminates every session of a store (`pg_terminate_backend`).

Every call is then a `StoreConnectionError` or, where it can be repeated safely (reads,
appends by event id, idempotent writes), succeeds on a fresh connection. A store
recovers in at most one failed call per caller, not one per pooled connection: the
first lost connection makes the pool replace all those made before it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from eventcore import (
    Aggregate,
    AppendResult,
    DomainEvent,
    EventStoreTables,
    LogPosition,
    Message,
    NewEvent,
    ProjectionContext,
    ProjectionWorker,
    Projector,
    Repository,
    Snapshot,
    SqlAlchemyEventStore,
    StoreConnectionError,
    StreamAppend,
    UnitOfWork,
    apply,
    create_schema,
    postgres_engine,
    projects,
    sqlite_engine,
)
from eventcore._messaging._outbox import Settlement
from eventcore.testing.pytest_plugin import postgres_url, reachable_postgres_engine
from tests.integration._terminate import kill_sessions, new_application_name, tagged_store

pytestmark = pytest.mark.anyio

CALLERS = 12  # more than the kept connections, the pool's size and its overflow together


class Noted(DomainEvent, type_name="test_connection_loss.Noted"):
    """Something was noted."""

    text: str


class Notebook(Aggregate, aggregate_type="test_connection_loss.Notebook"):
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
def name() -> str:
    """The `application_name` of the store's sessions."""
    return new_application_name()


@pytest.fixture
async def store(admin: AsyncEngine, name: str) -> AsyncIterator[SqlAlchemyEventStore]:
    """A PostgreSQL store (pool of 4, overflow 4) whose sessions carry `name`."""
    async with tagged_store(admin, name, pool_size=4, max_overflow=4) as tagged:
        yield tagged


async def _fill_the_pool(store: SqlAlchemyEventStore) -> None:
    """Have many connections open at once: kept by the store, and pooled."""
    async with anyio.create_task_group() as group:
        for n in range(CALLERS):
            group.start_soon(store.append, f"warm-{n}", [_new("warm")])
            group.start_soon(store.load_checkpoints)
    await store.read_stream("warm-0")


Operation = Callable[[SqlAlchemyEventStore], Awaitable[object]]


def _snapshot() -> Snapshot:
    return Snapshot("nb-1", "test_connection_loss.Notebook", 1, 1, {"notes": []}, None)


async def _hold_a_lease(store: SqlAlchemyEventStore) -> None:
    async with store.projection_leases().hold("notes") as lease:
        assert lease is not None


async def _watch(store: SqlAlchemyEventStore) -> None:
    async with store.watch():
        await store.append("watched", [_new("x")])


OPERATIONS: dict[str, Operation] = {
    "append": lambda s: s.append("notes-1", [_new("a")]),
    "append_streams": lambda s: s.append_streams(
        [StreamAppend("notes-1", [_new("a")]), StreamAppend("notes-2", [_new("b")])]
    ),
    "read_stream": lambda s: s.read_stream("warm-0"),
    "read_log": lambda s: s.read_log(LogPosition()),
    "read_all": lambda s: anext(aiter(s.read_all())),
    "log_head": lambda s: s.log_head(),
    "log_position_of": lambda s: s.log_position_of(1),
    "stream_version": lambda s: s.stream_version("warm-0"),
    "load_checkpoints": lambda s: s.load_checkpoints(),
    "delete_checkpoint": lambda s: s.delete_checkpoint("nobody"),
    "list_dead_letters": lambda s: s.list_dead_letters(),
    "list_deadlines": lambda s: s.list_deadlines(),
    "fire_deadlines": lambda s: s.fire_deadlines(),
    "active_projection_versions": lambda s: s.active_projection_versions(),
    "activate_projection": lambda s: s.activate_projection("notes", 2),
    "snapshots.get": lambda s: s.snapshots.get("nb-1"),
    "snapshots.save": lambda s: s.snapshots.save(_snapshot()),
    "outbox.status": lambda s: s.outbox.status(),
    "outbox.claim": lambda s: s.outbox.claim("relay-1", [0], 10, timedelta(seconds=5)),
    "outbox.settle": lambda s: s.outbox.settle("relay-1", Settlement([1], [])),
    "outbox.claim_lanes": lambda s: s.outbox.claim_lanes("relay-1", timedelta(seconds=5)),
    "outbox.lanes": lambda s: s.outbox.lanes(),
    "outbox.dead_letters": lambda s: s.outbox.dead_letters(),
    "inbox.handled": lambda s: s.inbox.handled("consumer-1", uuid.uuid4()),
    "inbox.dead_letters": lambda s: s.inbox.dead_letters(),
    "projection lease": _hold_a_lease,
    "watch": _watch,
}


@pytest.mark.postgres
@pytest.mark.parametrize("operation", list(OPERATIONS))
async def test_a_repeatable_call_succeeds_after_every_session_was_terminated(
    admin: AsyncEngine, name: str, store: SqlAlchemyEventStore, operation: str
) -> None:
    await _fill_the_pool(store)
    assert await kill_sessions(admin, name) >= 5  # kept, pooled, the lot

    # It meets a dead connection, and runs again on a fresh one: the caller sees nothing.
    await OPERATIONS[operation](store)
    await OPERATIONS[operation](store)


@pytest.mark.postgres
async def test_concurrent_callers_each_succeed_after_every_session_was_terminated(
    admin: AsyncEngine, name: str, store: SqlAlchemyEventStore
) -> None:
    await _fill_the_pool(store)
    await kill_sessions(admin, name)
    results: list[AppendResult] = []

    async def append(n: int) -> None:
        results.append(await store.append(f"after-{n}", [_new("b")]))

    async with anyio.create_task_group() as group:
        for n in range(CALLERS):
            group.start_soon(append, n)
            group.start_soon(store.read_stream, f"warm-{n}")
    assert len(results) == CALLERS
    assert all(r.next_expected_version == 1 for r in results)


async def _add_notes(store: SqlAlchemyEventStore, *, own_write: bool = False) -> None:
    async with UnitOfWork(store) as uow:
        if own_write:
            await uow.connection.execute(text("SELECT 1"))
        notebooks = uow.repository(Notebook)
        first, second = await notebooks.get("nb-1"), await notebooks.get("nb-2")
        first.note("more")
        second.note("more")
        await uow.commit()


async def _two_notebooks(store: SqlAlchemyEventStore) -> None:
    for notebook_id in ("nb-1", "nb-2"):
        notebook = Notebook(notebook_id)
        notebook.note("first")
        await Repository(Notebook, store).add(notebook)


@pytest.mark.postgres
@pytest.mark.parametrize("own_write", [False, True], ids=["appends only", "with own writes"])
async def test_a_unit_of_work_fails_once_as_a_store_connection_error(
    admin: AsyncEngine, name: str, store: SqlAlchemyEventStore, own_write: bool
) -> None:
    await _two_notebooks(store)
    await _add_notes(store)
    await _fill_the_pool(store)
    await kill_sessions(admin, name)

    # A unit of work cannot be repeated for its caller: it fails, as a typed error...
    with pytest.raises(StoreConnectionError):
        await _add_notes(store, own_write=own_write)
    # ...once: the next one runs on a fresh connection.
    await _add_notes(store, own_write=own_write)
    assert (await Repository(Notebook, store).get("nb-1")).notes == ["first", "more", "more"]


@pytest.mark.postgres
async def test_a_multi_stream_commit_whose_session_is_terminated_writes_nothing(
    admin: AsyncEngine, store: SqlAlchemyEventStore
) -> None:
    appends = [StreamAppend("notes-1", [_new("a")]), StreamAppend("notes-2", [_new("b")])]

    async def terminate_me(_: list[AppendResult]) -> None:
        pid = await session.connection.scalar(text("SELECT pg_backend_pid()"))
        async with admin.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    with pytest.raises(StoreConnectionError):
        async with store.session() as session:
            await session.commit(appends, before_commit=terminate_me)
    assert await store.stream_version("notes-1") == 0
    assert await store.stream_version("notes-2") == 0
    # The same append again goes through, on a fresh connection.
    assert [r.next_expected_version for r in await store.append_streams(appends)] == [1, 1]


class Tally(Projector, name="test_connection_loss.tally"):
    """One row per note, inserted with `context.insert`."""

    def __init__(self, table: Table) -> None:
        self.table = table

    @projects
    async def _noted(self, event: Noted, context: ProjectionContext) -> None:
        recorded = context.recorded
        row = {"stream": recorded.stream_id, "version": recorded.version, "text": event.text}
        await context.insert(self.table, row)


@pytest.mark.postgres
@pytest.mark.slow
async def test_a_projection_worker_survives_its_sessions_being_terminated(
    admin: AsyncEngine, name: str, store: SqlAlchemyEventStore
) -> None:
    table = Table(
        "tally",
        MetaData(schema=store.tables.schema),
        Column("stream", String(50), primary_key=True),
        Column("version", Integer, primary_key=True),
        Column("text", String(50), nullable=False),
    )
    async with store.engine.begin() as conn:
        await conn.run_sync(table.create)
    worker = ProjectionWorker(store, [Tally(table)], batch_size=10, lease_retry=0.05)
    streams = [f"notes-{n}" for n in range(5)]
    appended = 0
    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            group.start_soon(worker.run)
            for _ in range(4):
                for stream in streams:
                    await store.append(stream, [_new(f"n{appended + i}") for i in range(10)])
                    appended += 10
                await anyio.sleep(0.05)
                await kill_sessions(admin, name)
            head = await store.log_head()
            await worker.wait_for(head, timeout=30)
            group.cancel_scope.cancel()
    async with store.engine.connect() as conn:
        rows = await conn.scalar(select(func.count()).select_from(table))
    assert rows == appended  # each event once: none lost, none applied twice


@pytest.mark.postgres
async def test_schema_creation_on_a_missing_database_is_a_store_connection_error(
    admin: AsyncEngine,
) -> None:
    del admin  # only here to skip when the test server is down
    url = postgres_url().rsplit("/", 1)[0] + f"/missing_{uuid.uuid4().hex[:8]}"
    engine = postgres_engine(url)
    try:
        with pytest.raises(StoreConnectionError, match="does not exist"):
            await create_schema(engine)
        with pytest.raises(StoreConnectionError):
            await SqlAlchemyEventStore(engine).load_checkpoints()
    finally:
        await engine.dispose()


async def test_an_unreachable_server_is_a_store_connection_error_everywhere() -> None:
    engine = postgres_engine("postgresql+asyncpg://postgres@127.0.0.1:1/test")
    store = SqlAlchemyEventStore(engine)
    message = Message(uuid.uuid4(), "topic", "key", "type", 1, b"{}", {}, datetime.now(UTC))
    calls: list[Callable[[], Awaitable[object]]] = [
        store.create_schema,
        store.load_checkpoints,
        store.list_dead_letters,
        store.active_projection_versions,
        store.outbox.status,
        lambda: store.outbox.claim_lanes("relay-1", timedelta(seconds=5)),
        lambda: store.inbox.handled("consumer-1", uuid.uuid4()),
        lambda: store.inbox.record_failure("consumer-1", message, "boom", 3),
        lambda: store.log_head(),
        lambda: store.snapshots.get("nb-1"),
    ]
    try:
        for call in calls:
            with pytest.raises(StoreConnectionError, match="Connect call failed"):
                await call()
    finally:
        await engine.dispose()


async def test_a_sqlite_file_that_cannot_be_opened_is_a_store_connection_error(
    tmp_path: Path,
) -> None:
    engine = sqlite_engine(tmp_path / "missing-directory" / "events.db")
    store = SqlAlchemyEventStore(engine, tables=EventStoreTables())
    try:
        with pytest.raises(StoreConnectionError, match="unable to open"):
            await store.create_schema()
        with pytest.raises(StoreConnectionError):
            await store.load_checkpoints()
    finally:
        await engine.dispose()
        # aiosqlite stops the thread of a connection that failed to open in the
        # background: let it finish while this test's event loop still runs.
        await anyio.sleep(0.2)
