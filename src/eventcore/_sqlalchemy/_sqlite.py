"""SQLite backend (aiosqlite): the embedded default, through SQLAlchemy Core.

SQLite allows one writer at a time. Write transactions start with `BEGIN IMMEDIATE`
(so two writers never deadlock upgrading a read lock) and, within one process, queue
on a lock instead of spinning on `SQLITE_BUSY`; other processes wait `busy_timeout`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import anyio
from sqlalchemy import Row, Select, Text, bindparam, event, func, insert, select, type_coerce
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from eventcore._domain._events import EventRegistry
from eventcore._domain._metadata import LogPosition, RecordedEvent
from eventcore._exceptions import (
    SchemaError,
    StoreConnectionError,
    StoreError,
    UnitOfWorkError,
)
from eventcore._persistence._codec import PreparedAppend, decode_row
from eventcore._persistence._payload_cipher import PayloadCipher
from eventcore._persistence._sealed_snapshots import key_ids_in
from eventcore._persistence._signal import AppendSignal
from eventcore._persistence._store import AppendResult, BeforeCommit
from eventcore._persistence._versioning import (
    check_all_or_none_stored,
    check_already_stored,
    check_expected_version,
)
from eventcore._sqlalchemy._schema import EventStoreTables
from eventcore._sqlalchemy._session import BackendSession
from eventcore._sqlalchemy._snapshots import SqlAlchemySnapshotStore
from eventcore._sqlalchemy._sqlite_appends import append_many

__all__ = ["SqliteBackend", "configure_sqlite_engine"]

BUSY_TIMEOUT_MS = 30_000


def configure_sqlite_engine(engine: AsyncEngine) -> None:
    """Set up an aiosqlite engine for eventcore (idempotent).

    Every new connection gets WAL journaling (readers do not block the writer), a busy
    timeout, foreign keys, and the driver's own transaction handling switched off so that
    eventcore can issue `BEGIN IMMEDIATE` itself.
    """
    if not event.contains(engine.sync_engine, "connect", _on_connect):
        event.listen(engine.sync_engine, "connect", _on_connect)


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in (
        "PRAGMA journal_mode=WAL",
        f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
        "PRAGMA foreign_keys=ON",
        "PRAGMA synchronous=NORMAL",
    ):
        cursor.execute(pragma)
    cursor.close()


@asynccontextmanager
async def _translated_errors() -> AsyncIterator[None]:
    try:
        yield
    except OperationalError as error:
        if "no such table" in str(error):
            raise SchemaError(f"{error.orig} (run create_schema() first)") from error
        raise StoreConnectionError(f"SQLite failed: {error.orig!r}") from error
    except (DBAPIError, SQLAlchemyError) as error:
        raise StoreError(f"SQLite error: {error!r}") from error


class SqliteBackend:
    """Appends and reads for `SqlAlchemyEventStore` on SQLite."""

    def __init__(self, engine: AsyncEngine, tables: EventStoreTables, registry: EventRegistry):
        configure_sqlite_engine(engine)
        self._engine = engine
        self._events = tables.events
        self._registry = registry
        self._cipher: PayloadCipher | None = None  # opens sealed personal data on read
        self._write_lock = anyio.Lock()
        self.snapshots = SqlAlchemySnapshotStore(engine, tables)
        self.signal = AppendSignal()
        self._writer: int | None = None  # the task holding the write lock
        ev = tables.events
        self._columns = (
            ev.c.event_id,
            ev.c.stream_id,
            ev.c.stream_type,
            ev.c.version,
            ev.c.global_position,
            ev.c.recorded_at,
            ev.c.event_type,
            ev.c.schema_version,
            type_coerce(ev.c.data, Text),
            type_coerce(ev.c.metadata, Text),
        )
        self._insert = (
            insert(ev)
            .values(data=bindparam("data", type_=Text), metadata=bindparam("meta", type_=Text))
            .returning(ev.c.global_position, sort_by_parameter_order=True)
        )

    def open_sealed_with(self, cipher: PayloadCipher) -> None:
        """Open sealed personal data with `cipher` from now on (set once, at start)."""
        self._cipher = cipher

    async def close(self) -> None:
        """Nothing to release: every call uses and returns a pooled connection."""

    # -- appends ----------------------------------------------------------------------

    async def append_streams(self, appends: Sequence[PreparedAppend]) -> list[AppendResult]:
        """Append to one or several streams in one write transaction."""
        async with self.write_transaction() as conn:
            results = await self.append_in_transaction(conn, appends)
            async with _translated_errors():
                await conn.commit()
        self.signal.notify()
        return results

    @asynccontextmanager
    async def watch(self) -> AsyncIterator[AppendSignal]:
        """Appends of this process wake at once; other processes' are found by polling."""
        yield self.signal

    @asynccontextmanager
    async def write_transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside `BEGIN IMMEDIATE`; rolled back unless committed."""
        task = anyio.get_current_task().id
        if self._writer == task:
            raise UnitOfWorkError(
                "this task already holds SQLite's only write transaction (an open unit of "
                "work); write through that unit of work, or after it ends"
            )
        async with self._write_lock, _translated_errors():
            with anyio.CancelScope(shield=True):
                conn = await self._engine.connect()
            self._writer = task
            try:
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
                yield conn
            finally:
                self._writer = None
                # Shielded, like reads (see `_fetch`): a cancelled unit of work still
                # gives its connection back cleanly.
                with anyio.CancelScope(shield=True):
                    await conn.rollback()
                    await conn.close()

    async def append_in_transaction(
        self, conn: AsyncConnection, appends: Sequence[PreparedAppend]
    ) -> list[AppendResult]:
        """Append inside the caller's write transaction (several streams: see `append_many`)."""
        async with _translated_errors():
            if len(appends) > 1:
                return await append_many(conn, self._events, self._insert, appends)
            results = [await self._append(conn, append) for append in appends]
        check_all_or_none_stored([r if r.already_stored else None for r in results])
        return results

    async def _append(self, conn: AsyncConnection, append: PreparedAppend) -> AppendResult:
        ev = self._events
        ids = [e.event_id for e in append.events]
        found = await conn.execute(
            select(ev.c.event_id, ev.c.stream_id, ev.c.global_position).where(
                ev.c.event_id.in_(ids)
            )
        )
        current = await self._version(conn, append.stream_id)
        existing: list[tuple[uuid.UUID, str, int]] = [(r[0], r[1], r[2]) for r in found]
        stored = check_already_stored(append.stream_id, ids, existing, current)
        if stored is not None:
            return stored
        check_expected_version(append.stream_id, append.expected_version, current)
        if not append.events:
            return AppendResult(append.stream_id, current, ())
        now = datetime.now(UTC)
        rows = [
            {
                "event_id": e.event_id,
                "stream_id": append.stream_id,
                "stream_type": append.stream_type,
                "version": current + n,
                "event_type": e.event_type,
                "schema_version": e.schema_version,
                "data": e.data,
                "meta": e.metadata,
                "recorded_at": now,
            }
            for n, e in enumerate(append.events, start=1)
        ]
        positions = tuple((await conn.execute(self._insert, rows)).scalars())
        return AppendResult(append.stream_id, current + len(rows), positions)

    async def _version(self, conn: AsyncConnection, stream_id: str) -> int:
        ev = self._events
        query = select(func.coalesce(func.max(ev.c.version), 0)).where(ev.c.stream_id == stream_id)
        return int((await conn.execute(query)).scalar_one())

    # -- reads ------------------------------------------------------------------------

    async def stream_version(self, stream_id: str) -> int:
        """Return the stream's current version (0 if it has no events)."""
        async with _translated_errors(), self._engine.connect() as conn:
            return await self._version(conn, stream_id)

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int,
        to_version: int | None,
        as_of: datetime | None,
        backwards: bool,
        limit: int | None,
        conn: AsyncConnection | None = None,
    ) -> list[RecordedEvent]:
        """Read one stream; on `conn` if given, else on a pooled connection."""
        ev = self._events
        query = select(*self._columns).where(
            ev.c.stream_id == stream_id, ev.c.version >= from_version
        )
        if to_version is not None:
            query = query.where(ev.c.version <= to_version)
        if as_of is not None:
            query = query.where(ev.c.recorded_at <= as_of)
        query = query.order_by(ev.c.version.desc() if backwards else ev.c.version).limit(limit)
        return await self._fetch(query, conn)

    async def _fetch(
        self, query: Select[Any], conn: AsyncConnection | None = None
    ) -> list[RecordedEvent]:
        async with _translated_errors():
            if conn is not None:
                rows = (await conn.execute(query)).all()
            else:
                # Shielded: a read is short, and a connection whose query is cancelled
                # gets terminated by SQLAlchemy in a task that aiosqlite can leave hanging
                # forever (event loop shutdown then hangs too).
                with anyio.CancelScope(shield=True):
                    async with self._engine.connect() as own:
                        rows = (await own.execute(query)).all()
        if self._cipher is not None:
            opened = await self._cipher.reveal([(row[0], row[8]) for row in rows])
            return [self._decode(row, data) for row, data in zip(rows, opened, strict=True)]
        return [self._decode(row) for row in rows]

    async def stream_key_ids(self, stream_id: str, after: int, up_to: int) -> set[str]:
        """The data keys sealing personal data in `stream_id`'s versions `after`+1..`up_to`."""
        ev = self._events
        query = select(type_coerce(ev.c.data, Text)).where(
            ev.c.stream_id == stream_id, ev.c.version > after, ev.c.version <= up_to
        )
        async with _translated_errors(), self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return key_ids_in(row[0] for row in rows)

    def _decode(self, row: Row[Any], opened: Any = None) -> RecordedEvent:
        event_id, stream_id, stream_type, version, position, at, etype, sv, data, meta = tuple(row)
        if opened is not None:
            data = opened
        return decode_row(
            self._registry,
            event_id=event_id,
            stream_id=stream_id,
            stream_type=stream_type,
            version=version,
            global_position=position,
            recorded_at=at if at.tzinfo else at.replace(tzinfo=UTC),
            event_type=etype,
            schema_version=sv,
            data=data,
            metadata=meta,
        )

    async def read_all(
        self,
        *,
        after: int,
        batch_size: int,
        event_types: Collection[str] | None,
        stream_types: Collection[str] | None,
    ) -> AsyncIterator[RecordedEvent]:
        """Iterate over the global log in batches."""
        ev = self._events
        base = select(*self._columns)
        if event_types is not None:
            base = base.where(ev.c.event_type.in_(list(event_types)))
        if stream_types is not None:
            base = base.where(ev.c.stream_type.in_(list(stream_types)))
        position = after
        while True:
            query = base.where(ev.c.global_position > position)
            batch = await self._fetch(query.order_by(ev.c.global_position).limit(batch_size))
            for recorded in batch:
                yield recorded
            if len(batch) < batch_size:
                return
            position = batch[-1].global_position

    async def log_head(self) -> int:
        """The highest global position committed so far."""
        query = select(func.coalesce(func.max(self._events.c.global_position), 0))
        async with _translated_errors(), self._engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def log_end(self) -> LogPosition:
        """The last committed event's log position (SQLite commits in position order)."""
        head = await self.log_head()
        return LogPosition(0, head) if head else LogPosition()

    async def blocking_transaction(self) -> str | None:
        """Nothing holds SQLite's log back: it is read in position order."""
        return None

    async def log_position_of(self, global_position: int) -> LogPosition | None:
        """The log position of the event at `global_position`, if there is one."""
        ev = self._events
        query = select(ev.c.global_position).where(ev.c.global_position == global_position)
        async with _translated_errors(), self._engine.connect() as conn:
            found = (await conn.execute(query)).first()
        return None if found is None else LogPosition(0, global_position)

    async def read_log(
        self,
        after: LogPosition,
        *,
        limit: int,
        event_types: Collection[str] | None,
        stream_types: Collection[str] | None,
    ) -> list[RecordedEvent]:
        """Read committed events after `after`: SQLite commits one writer at a time, so
        position order is commit order."""
        ev = self._events
        query = select(*self._columns).where(ev.c.global_position > after.global_position)
        if event_types is not None:
            query = query.where(ev.c.event_type.in_(list(event_types)))
        if stream_types is not None:
            query = query.where(ev.c.stream_type.in_(list(stream_types)))
        return await self._fetch(query.order_by(ev.c.global_position).limit(limit))

    # -- unit of work -----------------------------------------------------------------

    @asynccontextmanager
    async def session(self) -> AsyncIterator[SqliteSession]:
        """A unit-of-work session: one write transaction for its whole life."""
        async with self.write_transaction() as conn:
            yield SqliteSession(self, conn)


class SqliteSession(BackendSession[AsyncConnection]):
    """One unit of work's transaction on SQLite (see `EventStoreSession`)."""

    def __init__(self, backend: SqliteBackend, conn: AsyncConnection) -> None:
        super().__init__(backend, conn, conn)
        self._backend = backend

    async def commit_prepared(
        self, appends: Sequence[PreparedAppend], before_commit: BeforeCommit | None
    ) -> list[AppendResult]:
        """Append and commit together with the writes made on `connection`."""
        self._begin_commit()
        try:
            results = await self._backend.append_in_transaction(self._conn, appends)
            stored = bool(results) and all(r.already_stored for r in results)
            if before_commit is not None and not stored:
                await before_commit(results)
        except BaseException:
            await self._conn.rollback()
            raise
        async with _translated_errors():
            if stored:
                await self._conn.rollback()  # an idempotent retry: keep the first attempt's writes
            else:
                await self._conn.commit()
                self._backend.signal.notify()
        return results

    async def announce(self) -> None:
        """Wake this process's relays and subscribers (others poll SQLite)."""
        self._backend.signal.notify()
