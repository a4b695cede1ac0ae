"""A few connections kept checked out of SQLAlchemy's pool for the store's own statements.

Checking a connection out of SQLAlchemy's pool and back costs tens of microseconds
(two greenlet switches and the pool's bookkeeping): more than an append's own Python
work. The store therefore keeps up to `keep` idle connections to itself and lends
their asyncpg connections directly. Connections beyond that go back to the pool.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import anyio
import asyncpg
from sqlalchemy import event
from sqlalchemy.engine.interfaces import PoolProxiedConnection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from eventcore._exceptions import EventcoreError, StoreConnectionError
from eventcore._sqlalchemy._errors import forget_pool
from eventcore._sqlalchemy._postgres_errors import CONNECTION_ERRORS, translate

__all__ = ["ConnectionLease"]

T = TypeVar("T")


class _Lost(Exception):
    """The lent connection was lost: `error` says how."""

    def __init__(self, error: StoreConnectionError) -> None:
        super().__init__(str(error))
        self.error = error


class ConnectionLease:
    """Lends asyncpg connections, keeping up to `keep` of them between uses."""

    def __init__(self, engine: AsyncEngine, keep: int) -> None:
        self._engine = engine
        self._keep = keep
        self._idle: list[PoolProxiedConnection] = []
        # engine.dispose() must not leave our idle connections open behind its back.
        event.listen(engine.sync_engine, "engine_disposed", self._on_dispose)

    async def run(self, operation: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run `operation` on a lent connection; once more, on a fresh one, if that
        connection was lost.

        A connection lost in use (a database restart, a failover, terminated sessions)
        means the others are suspect too: the idle ones are dropped, and the pool
        replaces every connection made before (see `forget_pool`), so the second try
        gets a fresh connection rather than the next dead one. Running `operation`
        twice is safe because the store only runs reads and appends here, and appends
        are idempotent by event id.
        """
        try:
            return await self._run_once(operation)
        except _Lost:
            pass
        try:
            return await self._run_once(operation)
        except _Lost as lost:
            raise lost.error from lost.error.__cause__

    async def _run_once(self, operation: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        pooled = self._idle.pop() if self._idle else await self._checkout()
        conn = cast("asyncpg.Connection", pooled.driver_connection)
        try:
            result = await operation(conn)
        except StoreConnectionError as error:
            await self._lost(pooled, error)
            raise _Lost(error) from error
        except CONNECTION_ERRORS as error:  # one the operation did not translate
            lost = StoreConnectionError(f"PostgreSQL connection failed: {error!r}")
            lost.__cause__ = error
            await self._lost(pooled, lost)
            raise _Lost(lost) from error
        except EventcoreError:
            # A refused append leaves the connection fine.
            await self._give_back(pooled, not conn.is_in_transaction())
            raise
        except asyncpg.PostgresError as error:
            await self._give_back(pooled, not conn.is_in_transaction())
            raise translate(error) from error
        except BaseException:
            # Anything else (a cancellation mid-query, say) may leave the protocol
            # mid-message: such a connection is closed, never reused.
            await self._give_back(pooled, False)
            raise
        if len(self._idle) < self._keep and not conn.is_in_transaction():
            self._idle.append(pooled)  # the common case, without a greenlet switch
        else:
            await self._give_back(pooled, not conn.is_in_transaction())
        return result

    async def _lost(self, pooled: PoolProxiedConnection, error: BaseException) -> None:
        """`pooled` was lost: so, likely, were the others (see `run`)."""
        with anyio.CancelScope(shield=True):
            await forget_pool(self._engine, pooled, error)
            await self.close()

    async def _checkout(self) -> PoolProxiedConnection:
        try:
            return await self._engine.raw_connection()
        except Exception as error:
            raise StoreConnectionError(f"cannot connect to PostgreSQL: {error!r}") from error

    async def _give_back(self, pooled: PoolProxiedConnection, reusable: bool) -> None:
        if reusable and len(self._idle) < self._keep:
            self._idle.append(pooled)
            return
        # Shielded: even a cancelled caller must not leave the connection checked out.
        with anyio.CancelScope(shield=True):
            await greenlet_spawn(pooled.close if reusable else pooled.invalidate)

    async def close(self) -> None:
        """Give the idle connections up (closed, rather than back to the pool).

        Also used when one of them turned out dead: the others likely are too.
        """
        idle, self._idle = self._idle, []
        for pooled in idle:
            await greenlet_spawn(pooled.invalidate)

    def _on_dispose(self, _engine: Any) -> None:
        # Runs inside AsyncEngine.dispose()'s greenlet, so closing can await.
        idle, self._idle = self._idle, []
        for pooled in idle:
            pooled.invalidate()
