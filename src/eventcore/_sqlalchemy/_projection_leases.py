"""`PostgresLeases`: projection leases as PostgreSQL advisory locks held on a session.

The lease on a projector is a session-level `pg_try_advisory_lock(key)` on a connection
checked out for as long as it is held. PostgreSQL releases the lock when that session
ends, including when its process is killed (the server sees the connection close), so
another worker's next attempt takes the lease over. The connection is checked every
`check_interval` seconds; when it fails, the holder's block is cancelled.

Each batch is fenced against a holder that lost its lease without noticing yet: see
`_lease_fence`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, cast

import anyio
from sqlalchemy.engine.interfaces import PoolProxiedConnection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from eventcore._exceptions import LeaseLostError, StoreConnectionError
from eventcore._persistence._leases import ProjectionLease
from eventcore._sqlalchemy._errors import connection_lost, forget_pool
from eventcore._sqlalchemy._lease_fence import FenceSql, PostgresLease
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
        self._fence = FenceSql.for_tables(tables)

    def key(self, name: str) -> int:
        """The advisory lock key of projector `name` (see `pg_locks`)."""
        return lease_key(self._tables, name)

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[ProjectionLease | None]:
        """Take the lease on `name` unless another session holds it (see `ProjectionLeases`)."""
        key = self.key(name)
        pooled, conn, taken = await self._try_lock(key)
        if not taken:
            with anyio.CancelScope(shield=True):
                await greenlet_spawn(pooled.close)
            yield None
            return
        lease = PostgresLease(name, key, conn.get_server_pid(), self._fence)
        try:
            async with self._watched(lease, conn):
                yield lease
        finally:
            await self._release(lease, pooled, conn)

    async def _try_lock(self, key: int) -> tuple[PoolProxiedConnection, asyncpg.Connection, bool]:
        """Try the lock on a pooled connection; once more on a fresh one if that one
        was lost (the pool then replaces the others too, see `forget_pool`)."""
        for attempt in (1, 2):
            pooled = await self._checkout()
            conn = cast("asyncpg.Connection", pooled.driver_connection)
            try:
                taken = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", key))
            except BaseException as error:
                with anyio.CancelScope(shield=True):
                    if isinstance(error, Exception) and connection_lost(error):
                        await forget_pool(self._engine, pooled, error)
                    else:
                        await greenlet_spawn(pooled.invalidate)
                if not isinstance(error, Exception):
                    raise
                if attempt == 1 and connection_lost(error):
                    continue
                raise StoreConnectionError(f"cannot take a lease: {error!r}") from error
            return pooled, conn, taken
        raise AssertionError("unreachable")

    async def _checkout(self) -> PoolProxiedConnection:
        try:
            return await self._engine.raw_connection()
        except Exception as error:
            raise StoreConnectionError(f"cannot connect to PostgreSQL: {error!r}") from error

    @asynccontextmanager
    async def _watched(self, lease: PostgresLease, conn: asyncpg.Connection) -> AsyncIterator[None]:
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
        self, lease: PostgresLease, conn: asyncpg.Connection, scope: anyio.CancelScope
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
        self, lease: PostgresLease, pooled: PoolProxiedConnection, conn: asyncpg.Connection
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
            if healthy:
                await greenlet_spawn(pooled.close)
            else:  # its connection failed (likely the others too) or kept the lock
                await forget_pool(self._engine, pooled, None)
