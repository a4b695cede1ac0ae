"""PostgreSQL backend: prepared statements on the asyncpg connection under SQLAlchemy's pool.

SQLAlchemy manages the pool and the unit of work's transaction; the hot paths (append,
read) run prepared statements directly on the asyncpg connection beneath it, which keeps
SQLAlchemy's per-statement overhead off them. An append is a single statement, so
outside a unit of work it is one round trip and one implicit transaction.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import AbstractAsyncContextManager, suppress
from datetime import datetime
from functools import partial
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from eventcore._domain._events import EventRegistry
from eventcore._domain._metadata import LogPosition, RecordedEvent
from eventcore._exceptions import ConcurrencyError, DuplicateEventError
from eventcore._persistence._codec import PreparedAppend
from eventcore._persistence._payload_cipher import PayloadCipher
from eventcore._persistence._sealed_snapshots import key_ids_in
from eventcore._persistence._signal import AppendSignal
from eventcore._persistence._store import AppendResult, ExpectedVersion
from eventcore._persistence._versioning import check_already_stored, check_expected_version
from eventcore._sqlalchemy._lease import ConnectionLease
from eventcore._sqlalchemy._listener import listening
from eventcore._sqlalchemy._postgres_errors import (
    DRIVER_ERRORS,
    LostRace,
    translate,
    translated_errors,
)
from eventcore._sqlalchemy._postgres_log_reads import LogReads
from eventcore._sqlalchemy._postgres_session import PostgresSession, postgres_session
from eventcore._sqlalchemy._postgres_snapshots import PostgresSnapshotStore
from eventcore._sqlalchemy._postgres_sql import PostgresSql
from eventcore._sqlalchemy._schema import EventStoreTables

__all__ = ["PostgresBackend"]

_MAX_VERSION = 2**62
_RACE_RETRIES = 50  # appends with ANY / STREAM_EXISTS that lose a race are retried
_NOTIFY_INTERVAL = 0.02  # seconds between two NOTIFYs of one store


class PostgresBackend:
    """Appends and reads for `SqlAlchemyEventStore` on PostgreSQL with asyncpg."""

    def __init__(self, engine: AsyncEngine, tables: EventStoreTables, registry: EventRegistry):
        self._engine = engine
        self._sql = PostgresSql.for_tables(tables)
        self._log_reads = LogReads(tables)
        self._registry = registry
        self._cipher: PayloadCipher | None = None  # opens sealed personal data on read
        # Keep at most half the pool, so units of work always find connections there.
        pool_size = getattr(engine.pool, "size", lambda: 2)()
        self._lease = ConnectionLease(engine, keep=pool_size // 2)
        self.snapshots = PostgresSnapshotStore(self._lease, tables)
        self.signal = AppendSignal()
        self.channel = _channel_name(tables)
        self._notified_at = 0.0

    @property
    def lease(self) -> ConnectionLease:
        """The connections the backend keeps (its data keys' statements use them too)."""
        return self._lease

    def open_sealed_with(self, cipher: PayloadCipher) -> None:
        """Open sealed personal data with `cipher` from now on (set once, at start)."""
        self._cipher = cipher

    async def close(self) -> None:
        """Return the connections the backend keeps to the engine's pool."""
        await self._lease.close()

    # -- appends ----------------------------------------------------------------------

    async def append_streams(
        self, appends: Sequence[PreparedAppend], conn: asyncpg.Connection | None = None
    ) -> list[AppendResult]:
        """Append to one stream (a single statement) or several (one transaction)."""
        if conn is None:
            return await self._lease.run(lambda pooled: self._append_and_announce(pooled, appends))
        return await self._append_and_announce(conn, appends)

    async def _append_and_announce(
        self, conn: asyncpg.Connection, appends: Sequence[PreparedAppend]
    ) -> list[AppendResult]:
        results = await self._append_with_retries(conn, appends)
        if not all(r.already_stored for r in results):
            await self.announce(conn)
        return results

    async def announce(self, conn: asyncpg.Connection) -> None:
        """Tell subscribers that events were committed: in this process at once, in
        others by `NOTIFY`, at most once per `_NOTIFY_INTERVAL` per store.

        The `NOTIFY` goes in its own implicit transaction after the append's commit: in
        the append's transaction it would take PostgreSQL's global notify lock and
        serialise every concurrent writer's commit.
        """
        self.signal.notify()
        now = time.monotonic()
        if now - self._notified_at >= _NOTIFY_INTERVAL:
            self._notified_at = now
            # A wake-up is a hint: the events are committed, and subscribers poll too.
            with suppress(*DRIVER_ERRORS):
                await conn.execute(self._sql.notify, self.channel)

    def watch(self) -> AbstractAsyncContextManager[AppendSignal]:
        """Listen for other processes' appends on a dedicated connection while open,
        again on a new one if it is lost (see `listening`)."""
        return listening(self._engine, self.channel, self.signal)

    async def _append_with_retries(
        self, conn: asyncpg.Connection, appends: Sequence[PreparedAppend]
    ) -> list[AppendResult]:
        for _ in range(_RACE_RETRIES):
            try:
                if len(appends) == 1:
                    return [await self._append(conn, appends[0])]
                with translated_errors():  # BEGIN and COMMIT: a lost connection, say
                    async with conn.transaction():
                        return [await self._append(conn, append) for append in appends]
            except LostRace:
                settled = await self.settle(conn, appends)
                if settled is not None:
                    return settled
        raise ConcurrencyError(f"gave up after {_RACE_RETRIES} lost races on one append")

    async def append_in_transaction(
        self, conn: asyncpg.Connection, appends: Sequence[PreparedAppend]
    ) -> list[AppendResult]:
        """Append inside a transaction the caller owns (it cannot be retried here)."""
        return [await self._append(conn, append) for append in appends]

    async def _append(self, conn: asyncpg.Connection, append: PreparedAppend) -> AppendResult:
        events = append.events
        if not events:
            actual = await self._version_on(conn, append.stream_id)
            check_expected_version(append.stream_id, append.expected_version, actual)
            return AppendResult(append.stream_id, actual, ())
        rows = await self._insert(conn, append)
        if len(rows) != len(events):
            # The version guard refused: a conflict, or an idempotent retry; settle() tells.
            raise LostRace(f"stream {append.stream_id!r} is not at the expected version")
        if len(rows) == 1:
            return AppendResult(append.stream_id, rows[0][1], (rows[0][0],))
        ordered = sorted(rows, key=_by_version)
        return AppendResult(append.stream_id, ordered[-1][1], tuple(r[0] for r in ordered))

    async def _insert(self, conn: asyncpg.Connection, append: PreparedAppend) -> list[Any]:
        sql, events, expected = self._sql, append.events, append.expected_version
        if expected is ExpectedVersion.ANY or expected is ExpectedVersion.STREAM_EXISTS:
            one, many = sql.append_one_relative, sql.append_many_relative
            version = int(expected is ExpectedVersion.STREAM_EXISTS)
        else:
            one, many = sql.append_one_exact, sql.append_many_exact
            version = 0 if expected is ExpectedVersion.NO_STREAM else int(expected)
        try:
            if len(events) == 1:
                e = events[0]
                args = [append.stream_id, e.event_id, append.stream_type, e.event_type,
                        e.schema_version, e.data, e.metadata]  # fmt: skip
                if version == 0 and one is sql.append_one_exact:
                    # A new stream needs no guard: the unique index refuses a second one.
                    row = await conn.fetchrow(sql.append_one_new, *args)
                else:
                    row = await conn.fetchrow(one, *args, version)
                return [] if row is None else [row]
            ids, types, schema_versions, data, metadata = zip(*events, strict=True)
            rows: list[Any] = await conn.fetch(
                many, append.stream_id, ids, append.stream_type, types, schema_versions, data,
                None if metadata.count("{}") == len(metadata) else metadata, version,
            )  # fmt: skip
        except DRIVER_ERRORS as error:
            raise translate(error) from error
        return rows

    async def settle(
        self, conn: asyncpg.Connection, appends: Sequence[PreparedAppend]
    ) -> list[AppendResult] | None:
        """After losing a race (the transaction is over): decide what the append amounts to.

        Returns the results if every append is stored already (an idempotent retry);
        raises `WrongExpectedVersionError` or `DuplicateEventError` when it cannot succeed;
        returns `None` when trying again may succeed (`ANY`, `STREAM_EXISTS`).
        """
        results: list[AppendResult] = []
        unstored: list[str] = []
        for append in appends:  # check every stream: a later one may be in conflict
            ids = [e.event_id for e in append.events]
            with translated_errors():
                existing = await conn.fetch(self._sql.find_ids, ids)
            actual = await self._version_on(conn, append.stream_id)
            found = [(r[0], r[1], r[2]) for r in existing]
            stored = check_already_stored(append.stream_id, ids, found, actual)
            if stored is None:
                check_expected_version(append.stream_id, append.expected_version, actual)
                unstored.append(append.stream_id)
            else:
                results.append(stored)
        if not unstored:
            return results
        if results:  # some streams are stored, others not: not a retry
            raise DuplicateEventError(
                unstored[0], [], "belong to an append whose other streams are stored"
            )
        return None

    async def _version_on(self, conn: asyncpg.Connection, stream_id: str) -> int:
        with translated_errors():
            version: int = await conn.fetchval(self._sql.stream_version, stream_id)
        return version

    # -- reads ------------------------------------------------------------------------

    async def stream_version(self, stream_id: str) -> int:
        """Return the stream's current version (0 if it has no events)."""
        return await self._lease.run(lambda conn: self._version_on(conn, stream_id))

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int,
        to_version: int | None,
        as_of: datetime | None,
        backwards: bool,
        limit: int | None,
        conn: asyncpg.Connection | None = None,
    ) -> list[RecordedEvent]:
        """Read one stream; on `conn` if given, else on a pooled connection."""
        sql = self._sql
        last = _MAX_VERSION if to_version is None else to_version
        if as_of is None:
            query = sql.read_backwards if backwards else sql.read_forwards
            args: tuple[Any, ...] = (stream_id, from_version, last, limit)
        else:
            query = sql.read_backwards_as_of if backwards else sql.read_forwards_as_of
            args = (stream_id, from_version, last, limit, as_of)
        if conn is None:
            rows = await self._lease.run(partial(_fetch, query=query, args=args))
        else:
            rows = await _fetch(conn, query=query, args=args)
        if self._cipher is not None:
            opened = await self._open(rows)
            return [
                self._decode(stream_id, row, 0, data)
                for row, data in zip(rows, opened, strict=True)
            ]
        return [self._decode(stream_id, row) for row in rows]

    async def _open(self, rows: list[asyncpg.Record]) -> list[Any]:
        assert self._cipher is not None
        return await self._cipher.reveal([(row[0], row[7]) for row in rows])

    async def stream_key_ids(self, stream_id: str, after: int, up_to: int) -> set[str]:
        """The data keys sealing personal data in `stream_id`'s versions `after`+1..`up_to`."""
        args = (stream_id, after, up_to)
        rows = await self._lease.run(partial(_fetch, query=self._sql.sealed_payloads, args=args))
        return key_ids_in(row[0] for row in rows)

    def _decode(
        self, stream_id: str, row: asyncpg.Record, transaction_id: int = 0, opened: Any = None
    ) -> RecordedEvent:
        event_id, stream_type, version, position, at, etype, sv, data, meta = row[:9]
        if opened is not None:
            data = opened
        event = self._registry.decode(etype, sv, data, stream_id, version)
        return RecordedEvent(
            event, event_id, stream_id, stream_type, version, position, at, etype, sv, meta,
            transaction_id,
        )  # fmt: skip

    async def log_head(self) -> int:
        """The highest global position committed so far."""
        head: int = await self._lease.run(lambda conn: conn.fetchval(self._sql.log_head))
        return head

    async def log_end(self) -> LogPosition:
        """The log position of the last committed event in log order."""
        row = await self._lease.run(lambda conn: _fetchrow(conn, self._sql.log_end))
        return LogPosition() if row is None else LogPosition(row[0], row[1])

    async def blocking_transaction(self) -> str | None:
        """The oldest transaction open on the server (it holds the log back), if any."""

        async def find(conn: asyncpg.Connection) -> str | None:
            row = await _fetchrow(conn, self._sql.blocking)
            if row is not None:
                pid, database, user, application, state, age, query = row
                app = f", application {application!r}" if application else ""
                return (
                    f"transaction of server process {pid} (database {database!r}, user "
                    f"{user!r}{app}, {state}, open for {age:.1f} s: {' '.join(query.split())!r})"
                )
            prepared = await _fetchrow(conn, self._sql.blocking_prepared)
            if prepared is not None:
                gid, database, age = prepared
                return f"prepared transaction {gid!r} (database {database!r}, {age:.1f} s old)"
            return None

        return await self._lease.run(find)

    async def log_position_of(self, global_position: int) -> LogPosition | None:
        """The log position of the event at `global_position`, if there is one."""
        tx = await self._lease.run(
            lambda conn: conn.fetchval(self._sql.position_of, global_position)
        )
        return None if tx is None else LogPosition(tx, global_position)

    async def read_log(
        self,
        after: LogPosition,
        *,
        limit: int,
        event_types: Collection[str] | None,
        stream_types: Collection[str] | None,
    ) -> list[RecordedEvent]:
        """Read committed events after `after` in commit order, below the xmin horizon."""
        args = (
            str(after.transaction_id),
            after.global_position,
            limit,
            None if event_types is None else list(event_types),
            None if stream_types is None else list(stream_types),
        )
        read = partial(self._log_reads.fetch, query=self._sql.read_log, args=args)
        rows = await self._lease.run(read)
        # The log's rows end with the stream id and the transaction id.
        if self._cipher is not None:
            opened = await self._open(rows)
            return [
                self._decode(r[9], r, r[10], data) for r, data in zip(rows, opened, strict=True)
            ]
        return [self._decode(row[9], row, row[10]) for row in rows]

    async def read_all(
        self,
        *,
        after: int,
        batch_size: int,
        event_types: Collection[str] | None,
        stream_types: Collection[str] | None,
    ) -> AsyncIterator[RecordedEvent]:
        """Iterate over the global log in batches, each fetched on a pooled connection."""
        types = list(event_types) if event_types is not None else None
        streams = list(stream_types) if stream_types is not None else None
        position = after
        while True:
            args = (position, batch_size, types, streams)
            read = partial(self._log_reads.fetch, query=self._sql.read_all, args=args)
            rows = await self._lease.run(read)
            opened = await self._open(rows) if self._cipher is not None else [None] * len(rows)
            for row, data in zip(rows, opened, strict=True):
                yield self._decode(row[9], row, 0, data)  # the log's rows end with the stream id
            if len(rows) < batch_size:
                return
            position = rows[-1][3]

    # -- unit of work -----------------------------------------------------------------

    def session(self) -> AbstractAsyncContextManager[PostgresSession]:
        """A unit-of-work session on one pooled connection (see `postgres_session`)."""
        return postgres_session(self, self._engine)


async def _fetch(
    conn: asyncpg.Connection, *, query: str, args: tuple[Any, ...]
) -> list[asyncpg.Record]:
    with translated_errors():
        rows: list[asyncpg.Record] = await conn.fetch(query, *args)
    return rows


async def _fetchrow(conn: asyncpg.Connection, query: str) -> asyncpg.Record | None:
    with translated_errors():
        row: asyncpg.Record | None = await conn.fetchrow(query)
    return row


def _channel_name(tables: EventStoreTables) -> str:
    # NOTIFY channels are identifiers: at most 63 bytes.
    return f"eventcore_{tables.schema or 'public'}_{tables.prefix}events"[:63]


def _by_version(row: asyncpg.Record) -> int:
    version: int = row[1]
    return version
