"""`PostgresLeases`: projection leases as PostgreSQL advisory locks held on a session.

The lease on a projector is a session-level `pg_try_advisory_lock(key)` on a connection
checked out for as long as it is held. PostgreSQL releases the lock when that session
ends, including when its process is killed (the server sees the connection close), so
another worker's next attempt takes the lease over. The connection is checked every
`check_interval` seconds; when it fails, the holder's block is cancelled.

A lease alone cannot stop a holder that lost it without noticing yet from writing. So
each batch first locks the projector's checkpoint row (`SELECT ... FOR UPDATE`) and
checks that it is where the holder left it and that the lock is still held: a stale
holder's batch fails, and two batches of one projector never overlap.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, cast

import anyio
from sqlalchemy import TextClause, text
from sqlalchemy.engine.interfaces import PoolProxiedConnection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import greenlet_spawn

from eventcore._domain._metadata import LogPosition
from eventcore._exceptions import LeaseLostError, ProjectionError, StoreConnectionError
from eventcore._persistence._leases import ProjectionLease
from eventcore._persistence._store import EventStoreSession
from eventcore._sqlalchemy._checkpoints import _error as checkpoint_error
from eventcore._sqlalchemy._schema import EventStoreTables

if TYPE_CHECKING:
    import asyncpg

__all__ = ["PostgresLeases", "lease_key"]

_log = logging.getLogger("eventcore.projections")


def lease_key(tables: EventStoreTables, name: str) -> int:
    """The advisory lock key of projector `name` in the store with `tables`.

    A stable 64-bit hash of the tables' schema and prefix and the projector's name, so
    that stores sharing a database have separate leases.
    """
    identity = f"eventcore.projection\0{tables.schema or 'public'}\0{tables.prefix}\0{name}"
    digest = hashlib.blake2b(identity.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresLeases:
    """Projection leases shared by every process on one PostgreSQL database.

    [`SqlAlchemyEventStore.projection_leases()`][eventcore.SqlAlchemyEventStore.projection_leases]
    returns one for a PostgreSQL store; make your own to tune how often the lease's
    connection is checked:

    ```python
    leases = PostgresLeases(store.engine, store.tables, check_interval=0.5)
    worker = ProjectionWorker(store, [RosterProjector()], leases=leases)
    ```

    Each lease held keeps one connection of the engine's pool checked out.

    Args:
        engine: the store's engine (asyncpg).
        tables: the store's tables: their schema and prefix are part of each lock key.
        check_interval: seconds between two checks of a held lease's connection.
        check_timeout: seconds a check may take before the lease counts as lost.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        tables: EventStoreTables,
        *,
        check_interval: float = 1.0,
        check_timeout: float = 5.0,
    ) -> None:
        self._engine = engine
        self._tables = tables
        self._check_interval = check_interval
        self._check_timeout = check_timeout
        checkpoints = tables.qualified(tables.checkpoints)
        self._claim = text(
            f"INSERT INTO {checkpoints} (name, transaction_id, global_position) "
            "VALUES (:name, 0, 0) ON CONFLICT (name) DO NOTHING"
        )
        self._lock = text(
            f"SELECT c.transaction_id, c.global_position, EXISTS (SELECT FROM pg_locks l "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.pid = :pid "
            "AND l.classid = CAST(:high AS oid) AND l.objid = CAST(:low AS oid) "
            f"AND l.objsubid = 1) FROM {checkpoints} c WHERE c.name = :name FOR UPDATE OF c"
        )

    def key(self, name: str) -> int:
        """The advisory lock key of projector `name` (see `pg_locks`)."""
        return lease_key(self._tables, name)

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[ProjectionLease | None]:
        """Take the lease on `name` unless another session holds it (see `ProjectionLeases`)."""
        key = self.key(name)
        pooled = await self._checkout()
        conn = cast("asyncpg.Connection", pooled.driver_connection)
        try:
            taken = await conn.fetchval("SELECT pg_try_advisory_lock($1)", key)
        except BaseException as error:
            with anyio.CancelScope(shield=True):
                await greenlet_spawn(pooled.invalidate)
            if isinstance(error, Exception):
                raise StoreConnectionError(f"cannot take a lease: {error!r}") from error
            raise
        if not taken:
            with anyio.CancelScope(shield=True):
                await greenlet_spawn(pooled.close)
            yield None
            return
        lease = _PostgresLease(name, key, conn.get_server_pid(), self._claim, self._lock)
        try:
            async with self._watched(lease, conn):
                yield lease
        finally:
            await self._release(lease, pooled, conn)

    async def _checkout(self) -> PoolProxiedConnection:
        try:
            return await self._engine.raw_connection()
        except Exception as error:
            raise StoreConnectionError(f"cannot connect to PostgreSQL: {error!r}") from error

    @asynccontextmanager
    async def _watched(
        self, lease: _PostgresLease, conn: asyncpg.Connection
    ) -> AsyncIterator[None]:
        """Run the block while checking the lease; cancel it if the lease is lost."""
        failure: Exception | None = None
        interrupted = False
        async with anyio.create_task_group() as group:
            group.start_soon(self._watch, lease, conn, group.cancel_scope)
            try:
                yield
            except anyio.get_cancelled_exc_class():
                interrupted = bool(lease.lost)
                raise
            except Exception as error:
                failure = error  # raised below as itself, not in an exception group
            finally:
                group.cancel_scope.cancel()
        if failure is not None:
            raise failure
        if interrupted:
            raise LeaseLostError(f"lost the lease on projector {lease.name!r}: {lease.lost}")

    async def _watch(
        self, lease: _PostgresLease, conn: asyncpg.Connection, scope: anyio.CancelScope
    ) -> None:
        while True:
            await anyio.sleep(self._check_interval)
            try:
                with anyio.fail_after(self._check_timeout):
                    await conn.fetchval("SELECT 1")
            except Exception as error:
                lease.lost = f"its connection failed: {error!r}"
                _log.warning("projector %s: lease lost, %s", lease.name, lease.lost)
                scope.cancel()
                return

    async def _release(
        self, lease: _PostgresLease, pooled: PoolProxiedConnection, conn: asyncpg.Connection
    ) -> None:
        # Shielded: a cancelled holder must still unlock, or close the session (which
        # unlocks too); a connection still holding the lock never goes back to the pool.
        with anyio.CancelScope(shield=True):
            healthy = False
            if not lease.lost:
                lease.lost = "it was released"
                try:
                    with anyio.fail_after(self._check_timeout):
                        unlock = "SELECT pg_advisory_unlock($1)"
                        healthy = bool(await conn.fetchval(unlock, lease.key))
                except Exception as error:
                    _log.warning("projector %s: unlock failed: %r", lease.name, error)
            await greenlet_spawn(pooled.close if healthy else pooled.invalidate)


class _PostgresLease:
    def __init__(self, name: str, key: int, pid: int, claim: TextClause, lock: TextClause) -> None:
        self._name = name
        self.key = key
        self.pid = pid
        self._claim = claim
        self._lock = lock
        self.lost = ""  # why it was lost, once it is

    @property
    def name(self) -> str:
        return self._name

    async def guard(self, session: EventStoreSession, checkpoint: LogPosition) -> None:
        """Lock the checkpoint row; check it is at `checkpoint` and the lease still held."""
        if self.lost:
            raise LeaseLostError(f"lost the lease on projector {self._name!r}: {self.lost}")
        connection: Any = getattr(session, "connection", None)
        if not isinstance(connection, AsyncConnection):
            raise ProjectionError("PostgreSQL leases need a SqlAlchemyEventStore session")
        params = {
            "name": self._name,
            "pid": self.pid,
            "high": (self.key >> 32) & 0xFFFFFFFF,
            "low": self.key & 0xFFFFFFFF,
        }
        try:
            if checkpoint == LogPosition():
                await connection.execute(self._claim, {"name": self._name})
            row = (await connection.execute(self._lock, params)).first()
        except SQLAlchemyError as error:
            raise checkpoint_error(
                f"cannot lock the checkpoint of {self._name!r}", error
            ) from error
        stored = None if row is None else LogPosition(row[0], row[1])
        if stored != checkpoint:
            raise LeaseLostError(
                f"the checkpoint of projector {self._name!r} is {stored}, not {checkpoint}: "
                "another worker (or a reset) moved it"
            )
        if row is None or not row[2]:
            raise LeaseLostError(f"this process no longer holds the lease on {self._name!r}")
