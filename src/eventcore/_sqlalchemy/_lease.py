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

__all__ = ["ConnectionLease"]

T = TypeVar("T")


class ConnectionLease:
    """Lends asyncpg connections, keeping up to `keep` of them between uses."""

    def __init__(self, engine: AsyncEngine, keep: int) -> None:
        self._engine = engine
        self._keep = keep
        self._idle: list[PoolProxiedConnection] = []
        # engine.dispose() must not leave our idle connections open behind its back.
        event.listen(engine.sync_engine, "engine_disposed", self._on_dispose)

    async def run(self, operation: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run `operation` on a lent connection; once more if that connection was dead.

        A connection kept idle may have died meanwhile (a database restart, an idle
        timeout). Then every idle one is suspect: they are all dropped and `operation`
        runs once more on a connection from the pool. That is safe because the store
        only runs reads and appends here, and appends are idempotent by event id.
        """
        reused = bool(self._idle)
        try:
            return await self._run_once(operation)
        except StoreConnectionError:
            if not reused:
                raise
            await self.close()
        return await self._run_once(operation)

    async def _run_once(self, operation: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        pooled = self._idle.pop() if self._idle else await self._checkout()
        conn = cast("asyncpg.Connection", pooled.driver_connection)
        try:
            result = await operation(conn)
        except EventcoreError as error:
            # A refused append leaves the connection fine; a broken one must go.
            reusable = not isinstance(error, StoreConnectionError)
            await self._give_back(pooled, reusable and not conn.is_in_transaction())
            raise
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
