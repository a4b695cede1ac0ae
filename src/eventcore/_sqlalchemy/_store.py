"""`SqlAlchemyEventStore`: the event store on PostgreSQL (asyncpg) or SQLite (aiosqlite)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine

from eventcore._domain._events import EventRegistry, default_registry
from eventcore._domain._metadata import LogPosition, NewEvent, RecordedEvent
from eventcore._exceptions import (
    ConcurrencyError,
    InvalidEventError,
    StoreConnectionError,
    UnsupportedBackendError,
)
from eventcore._persistence._codec import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    check_log_read,
    check_read_range,
    encode_appends,
    utc_or_none,
    validate_stream_id,
)
from eventcore._persistence._dead_letters import DeadLetter
from eventcore._persistence._deadlines import (
    Deadline,
    deadline_appends,
    due_now,
)
from eventcore._persistence._key_providers import KeyProvider
from eventcore._persistence._leases import InProcessLeases, ProjectionLeases
from eventcore._persistence._payload_cipher import PayloadCipher
from eventcore._persistence._personal_data import PersonalDataKeys
from eventcore._persistence._protection import Protection
from eventcore._persistence._signal import AppendSignal
from eventcore._persistence._snapshots import SnapshotStore
from eventcore._persistence._store import (
    AppendResult,
    ExpectedVersion,
    StreamAppend,
)
from eventcore._sqlalchemy._checkpoints import SqlAlchemyCheckpoints
from eventcore._sqlalchemy._data_keys import SqlAlchemyDataKeyStore
from eventcore._sqlalchemy._dead_letters import SqlAlchemyDeadLetters
from eventcore._sqlalchemy._deadlines import SqlAlchemyDeadlines
from eventcore._sqlalchemy._errors import connection_lost
from eventcore._sqlalchemy._idempotency import SqlAlchemyIdempotencyStore
from eventcore._sqlalchemy._inbox import SqlAlchemyInbox
from eventcore._sqlalchemy._outbox import SqlAlchemyOutbox
from eventcore._sqlalchemy._projection_versions import SqlAlchemyProjectionVersions
from eventcore._sqlalchemy._schema import EventStoreTables, check_schema, create_schema
from eventcore._sqlalchemy._store_session import SqlAlchemySession

if TYPE_CHECKING:
    from eventcore._sqlalchemy._postgres import PostgresBackend
    from eventcore._sqlalchemy._sqlite import SqliteBackend

__all__ = ["SqlAlchemyEventStore"]

_FIRE_ATTEMPTS = 20  # firing deadlines that lose a race with a stream's writer is retried


class SqlAlchemyEventStore:
    """An [`EventStore`][eventcore.EventStore] on async SQLAlchemy 2.0.

    Supports PostgreSQL through asyncpg (`postgresql+asyncpg://...`, install
    `eventcore-es[postgres]`) and SQLite through aiosqlite (`sqlite+aiosqlite:///file.db`,
    install `eventcore-es[sqlite]`).

    ```python
    engine = create_async_engine("postgresql+asyncpg://localhost/app")
    store = SqlAlchemyEventStore(engine, tables=EventStoreTables(prefix="registration_"))
    await store.create_schema()
    ```

    Args:
        engine: the async engine; the store uses its connection pool.
        tables: the tables to use (default: `EventStoreTables()`, prefix `eventcore_`).
        registry: where event type names are looked up (default: `default_registry`).
        max_payload_bytes: appends with a larger encoded event payload are refused.
        key_provider: the key-encryption keys of personal data (see
            [`personal_data`][eventcore.SqlAlchemyEventStore.personal_data]); without
            one, events with personal data fields are refused.
        key_cache_seconds: how long unwrapped data keys are cached (a subject forgotten
            by another process stays readable here for at most that long).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        tables: EventStoreTables | None = None,
        registry: EventRegistry | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        key_provider: KeyProvider | None = None,
        key_cache_seconds: float = 60.0,
    ) -> None:
        self.engine = engine
        self.tables = tables or EventStoreTables()
        self._max_payload_bytes = max_payload_bytes
        registry = registry or default_registry
        self._backend = _backend_for(engine, self.tables, registry)
        backend = self._backend
        protection = Protection.of(
            key_provider,
            data_keys=lambda: _data_keys_for(engine, self.tables, self._key_transaction, backend),
            cache_seconds=key_cache_seconds,
            session=self.session,
            registry=registry,
            snapshots=backend.snapshots,
            stream_key_ids=backend.stream_key_ids,
        )
        self._protection = protection
        self._cipher = protection.cipher
        if protection.keys is not None:
            backend.open_sealed_with(protection.cipher)
        self._checkpoints = SqlAlchemyCheckpoints(engine, self.tables)
        self._leases: ProjectionLeases | None = None
        self._dead_letters = SqlAlchemyDeadLetters(engine, self.tables)
        self._deadlines = SqlAlchemyDeadlines(engine, self.tables)
        self._versions = SqlAlchemyProjectionVersions(engine, self.tables)
        self._outbox = _outbox_for(engine, self.tables, self._cipher)
        self._inbox = SqlAlchemyInbox(engine, self.tables, self._cipher)
        self._idempotency = SqlAlchemyIdempotencyStore(engine, self.tables)

    @property
    def snapshots(self) -> SnapshotStore:
        """The snapshot store in the same database (the `snapshots` table)."""
        return self._protection.snapshots

    @property
    def personal_data(self) -> PersonalDataKeys:
        """Forget data subjects, inspect and rotate their keys (needs a `key_provider`).

        Data keys live in the `data_keys` table, wrapped by the key provider's
        key-encryption key; see the personal data guide.
        """
        return self._protection.required()

    @asynccontextmanager
    async def _key_transaction(self) -> AsyncIterator[Any]:
        """A write transaction for data keys, committed on success (on SQLite, queued
        behind the store's other writers)."""
        backend = self._backend
        if hasattr(backend, "write_transaction"):
            async with backend.write_transaction() as conn:
                yield conn
                await conn.commit()
        else:
            async with self.engine.begin() as conn:
                yield conn

    @property
    def outbox(self) -> SqlAlchemyOutbox:
        """The transactional outbox in the same database (the `outbox` tables)."""
        return self._outbox

    @property
    def inbox(self) -> SqlAlchemyInbox:
        """The consumers' inbox in the same database (the `inbox` tables)."""
        return self._inbox

    @property
    def idempotency(self) -> SqlAlchemyIdempotencyStore:
        """Idempotent commands' keys and results in the same database (`idempotency_keys`)."""
        return self._idempotency

    async def close(self) -> None:
        """Give the connections the store keeps back to the engine's pool.

        Call it before `engine.dispose()` at shutdown (disposing the engine also
        closes them). The store can still be used afterwards.
        """
        await self._backend.close()

    async def create_schema(self) -> None:
        """Create this store's tables if they do not exist (see `create_schema`)."""
        await create_schema(self.engine, self.tables)

    async def check_schema(self) -> None:
        """Raise [`SchemaError`][eventcore.SchemaError], naming them, if tables are missing."""
        await check_schema(self.engine, self.tables)

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        *,
        expected_version: int | ExpectedVersion = ExpectedVersion.ANY,
        stream_type: str = "",
    ) -> AppendResult:
        """Append `events` to one stream atomically (see `EventStore.append`)."""
        append = StreamAppend(stream_id, events, expected_version, stream_type)
        return (await self.append_streams([append]))[0]

    async def append_streams(self, appends: Sequence[StreamAppend]) -> list[AppendResult]:
        """Append to several streams in one transaction: all or none."""
        prepared = encode_appends(appends, self._max_payload_bytes)
        if not prepared:
            return []
        prepared = await self._cipher.protect_appends(appends, prepared)
        return await self._backend.append_streams(prepared)

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        as_of: datetime | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        """Read events of one stream (see `EventStore.read_stream`)."""
        check_read_range(from_version, to_version, limit)
        return await self._backend.read_stream(
            validate_stream_id(stream_id),
            from_version=from_version,
            to_version=to_version,
            as_of=utc_or_none(as_of),
            backwards=backwards,
            limit=limit,
        )

    async def read_all(
        self,
        *,
        after: int = 0,
        batch_size: int = 500,
        event_types: Collection[str] | None = None,
        stream_types: Collection[str] | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        """Iterate over the global log after position `after` (see `EventStore.read_all`)."""
        if batch_size < 1:
            raise InvalidEventError(f"batch_size must be >= 1, not {batch_size}")
        async for recorded in self._backend.read_all(
            after=after, batch_size=batch_size, event_types=event_types, stream_types=stream_types
        ):
            yield recorded

    async def read_log(
        self,
        after: LogPosition = LogPosition(),
        *,
        limit: int = 500,
        event_types: Collection[str] | None = None,
        stream_types: Collection[str] | None = None,
    ) -> list[RecordedEvent]:
        """Read the next committed events in commit order (see `EventStore.read_log`).

        On PostgreSQL this reads only below the oldest running transaction: a
        transaction left open holds every reader back (set
        `idle_in_transaction_session_timeout`, and watch subscriber lag).
        """
        check_log_read(after, limit)
        return await self._backend.read_log(
            after, limit=limit, event_types=event_types, stream_types=stream_types
        )

    async def stream_version(self, stream_id: str) -> int:
        """Return the stream's current version (0 when it does not exist)."""
        return await self._backend.stream_version(validate_stream_id(stream_id))

    async def log_head(self) -> int:
        """The highest global position committed so far (0 for an empty log)."""
        return await self._backend.log_head()

    async def log_position_of(self, global_position: int) -> LogPosition | None:
        """The log position of the event at `global_position`, if there is one."""
        return await self._backend.log_position_of(global_position)

    async def log_end(self) -> LogPosition:
        """The log position of the last event committed so far, in log (commit) order.

        `LogPosition()` for an empty log. On PostgreSQL a transaction that took a lower
        global position can commit after one that took a higher one, so this, rather
        than the position of [`log_head()`][eventcore.SqlAlchemyEventStore.log_head], is
        where the log ends as of now: see
        [`wait_until_readable`][eventcore.wait_until_readable].
        """
        return await self._backend.log_end()

    async def blocking_transaction(self) -> str | None:
        """Which transaction holds the log's readers back now, if one does.

        On PostgreSQL the log is read only below the oldest transaction still open on
        the server that wrote something (in any database): this describes it (server
        process, database, user, application, state, age, statement), or a prepared
        transaction; `None` when none is open. On SQLite, always `None`.
        """
        return await self._backend.blocking_transaction()

    async def load_checkpoints(self, names: list[str] | None = None) -> dict[str, LogPosition]:
        """The checkpoints of the named subscribers (all of them when `None`)."""
        return await self._checkpoints.load_all(names)

    async def delete_checkpoint(self, name: str) -> None:
        """Forget subscriber `name`'s checkpoint: it starts again from the beginning."""
        await self._checkpoints.delete(name)

    async def list_dead_letters(self, projector: str | None = None) -> list[DeadLetter]:
        """The events parked for `projector` (all projectors when `None`), in log order."""
        return await self._dead_letters.load_all(projector)

    async def active_projection_versions(self) -> dict[str, int]:
        """The active version of each projection whose version was ever switched."""
        return await self._versions.load_all()

    async def activate_projection(self, name: str, version: int) -> None:
        """Make `version` of projection `name` the one that serves readers (one row)."""
        await self._versions.activate(name, version)

    async def fire_deadlines(self, *, now: datetime | None = None, limit: int = 100) -> int:
        """Append the events of the deadlines due at `now`; return how many fired.

        One transaction takes the due deadlines (on PostgreSQL with `FOR UPDATE SKIP
        LOCKED`, so concurrent callers share them out), appends their events and
        deletes them. It is retried when it loses a race with a stream's writer.
        """
        moment = due_now(now, limit)
        reconnected = False
        for _ in range(_FIRE_ATTEMPTS):
            try:
                return await self._fire_once(moment, limit)
            except ConcurrencyError:
                continue  # a writer appended to one of the streams meanwhile
            except StoreConnectionError as error:
                # Safe to repeat (a deadline's event keeps its id), once, on a fresh
                # connection: the lost one's pool was replaced.
                if reconnected or not connection_lost(error):
                    raise
                reconnected = True
        raise ConcurrencyError(f"gave up firing deadlines after {_FIRE_ATTEMPTS} lost races")

    async def _fire_once(self, now: datetime, limit: int) -> int:
        async with self._backend.session() as inner:
            due = await self._deadlines.take_due(inner.connection, now, limit)
            if not due:
                return 0
            results = await inner.commit_prepared(deadline_appends(due), None)
        if all(r.already_stored for r in results):
            # The commit was rolled back: their events are in the log already (another
            # caller took them once this one had lost a race). Drop any leftover rows.
            async with self.engine.begin() as conn:
                await self._deadlines.cancel(conn, [d.id for d in due])
            return 0
        return len(due)

    async def list_deadlines(self, stream_id: str | None = None) -> list[Deadline]:
        """The scheduled deadlines (of one stream, if given), the earliest first."""
        return await self._deadlines.load_all(stream_id)

    def projection_leases(self) -> ProjectionLeases:
        """Where projection workers take their leases (one per projector at a time).

        On PostgreSQL these are advisory locks ([`PostgresLeases`][eventcore.PostgresLeases]),
        shared by every process; on SQLite, [`InProcessLeases`][eventcore.InProcessLeases]:
        run one worker process there.
        """
        if self._leases is None:
            if self.engine.dialect.name == "postgresql":
                from eventcore._sqlalchemy._projection_leases import PostgresLeases

                self._leases = PostgresLeases(self.engine, self.tables)
            else:
                self._leases = InProcessLeases()
        return self._leases

    def watch(self) -> AbstractAsyncContextManager[AppendSignal]:
        """Be woken when events are appended, while the block is open.

        Appends in this process wake at once. On PostgreSQL the block also listens (on
        a connection of its own) for other processes' appends, which each store
        announces with `NOTIFY`; on SQLite, other processes are found only by polling.
        """
        return self._backend.watch()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[SqlAlchemySession]:
        """Open a transaction for a unit of work; it rolls back unless committed."""
        async with self._backend.session() as inner:
            yield SqlAlchemySession(
                inner,
                self._max_payload_bytes,
                self._checkpoints,
                self._dead_letters,
                self._deadlines,
                self._outbox,
                self._backend.signal,
                self._cipher,
                # SQLite's one write transaction is the session's: keys are made in it.
                sqlite=self.engine.dialect.name == "sqlite",
            )


def _outbox_for(
    engine: AsyncEngine, tables: EventStoreTables, cipher: PayloadCipher
) -> SqlAlchemyOutbox:
    if engine.dialect.name == "postgresql" and engine.dialect.driver == "asyncpg":
        from eventcore._sqlalchemy._postgres_outbox import PostgresOutbox

        return PostgresOutbox(engine, tables, cipher)
    return SqlAlchemyOutbox(engine, tables, cipher)


def _data_keys_for(
    engine: AsyncEngine, tables: EventStoreTables, begin: Any, backend: Any
) -> SqlAlchemyDataKeyStore:
    if engine.dialect.name == "postgresql" and engine.dialect.driver == "asyncpg":
        from eventcore._sqlalchemy._postgres_data_keys import PostgresDataKeyStore

        return PostgresDataKeyStore(engine, tables, begin, backend.lease)
    return SqlAlchemyDataKeyStore(engine, tables, begin)


def _backend_for(
    engine: AsyncEngine,
    tables: EventStoreTables,
    registry: EventRegistry,
) -> PostgresBackend | SqliteBackend:
    dialect, driver = engine.dialect.name, engine.dialect.driver
    if dialect == "postgresql" and driver == "asyncpg":
        from eventcore._sqlalchemy._postgres import PostgresBackend

        return PostgresBackend(engine, tables, registry)
    if dialect == "sqlite" and driver == "aiosqlite":
        from eventcore._sqlalchemy._sqlite import SqliteBackend

        return SqliteBackend(engine, tables, registry)
    raise UnsupportedBackendError(
        f"SqlAlchemyEventStore supports postgresql+asyncpg and sqlite+aiosqlite, "
        f"not {dialect}+{driver}"
    )
