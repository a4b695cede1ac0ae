"""`listening`: PostgreSQL `LISTEN` for a store's `watch()`, kept up across lost connections.

The listening connection is a dedicated one from the engine's pool. When it is lost (a
database restart, a failover, `pg_terminate_backend`), a background task listens again
on a new one, retrying with backoff, and wakes the waiters once it does: notifications
sent meanwhile were missed, so they should look for themselves. While no connection
listens, waiters still wake on their own timeouts (they poll), so nothing is lost but
latency.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import anyio
import asyncpg
from anyio.abc import TaskStatus
from sqlalchemy.engine.interfaces import PoolProxiedConnection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from eventcore._persistence._signal import AppendSignal
from eventcore._sqlalchemy._errors import forget_pool

__all__ = ["listening"]

_FIRST_RETRY = 0.5  # seconds before listening again; doubled per failure in a row
_MAX_RETRY = 30.0
_BROKEN = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)


@asynccontextmanager
async def listening(
    engine: AsyncEngine, channel: str, signal: AppendSignal
) -> AsyncIterator[AppendSignal]:
    """Notify `signal` on each `NOTIFY` on `channel` while open (see the module)."""
    failure: BaseException | None = None
    async with anyio.create_task_group() as group:
        await group.start(_listen, engine, channel, signal)
        try:
            yield signal
        except BaseException as error:  # raised below as itself, not in an exception group
            failure = error
        finally:
            group.cancel_scope.cancel()
    if failure is not None:
        raise failure


async def _listen(
    engine: AsyncEngine,
    channel: str,
    signal: AppendSignal,
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Listen until cancelled, again after each lost connection. Reports started once
    it listens, or once the first attempt failed (the waiters then poll)."""
    started = False

    def listening() -> None:
        nonlocal started
        if started:
            signal.notify()  # listening again: what was missed is for the waiters to find
        else:
            started = True
            task_status.started()

    retry = _FIRST_RETRY
    while True:
        if await _listen_once(engine, channel, signal, listening):
            retry = _FIRST_RETRY  # it listened: the next loss is a new one
        if not started:
            started = True
            task_status.started()
        await anyio.sleep(retry)
        retry = min(retry * 2, _MAX_RETRY)


async def _listen_once(
    engine: AsyncEngine, channel: str, signal: AppendSignal, listening: Callable[[], None]
) -> bool:
    """Listen on one connection until it is lost; whether it listened at all."""
    try:
        pooled = await engine.raw_connection()
    except Exception:
        return False
    conn = cast("asyncpg.Connection", pooled.driver_connection)
    lost = anyio.Event()

    def wake(*_: Any) -> None:
        signal.notify()

    def on_lost(_: Any) -> None:
        lost.set()

    listened = False
    try:
        conn.add_termination_listener(on_lost)
        await conn.add_listener(channel, wake)
        listened = True
        listening()
        await lost.wait()
    except _BROKEN:
        pass  # the connection broke while starting to listen: retried
    finally:
        await _give_back(engine, pooled, conn, channel, wake, on_lost, listened)
    return listened


async def _give_back(
    engine: AsyncEngine,
    pooled: PoolProxiedConnection,
    conn: asyncpg.Connection,
    channel: str,
    wake: Any,
    on_lost: Any,
    listened: bool,
) -> None:
    # Shielded: a cancelled watcher must still give its connection back. A connection
    # that may still listen (cancelled mid-LISTEN, say), or was lost, is closed rather
    # than pooled; a lost one makes the pool replace the others made before it (they
    # are likely dead too, see `forget_pool`), so listening again finds a live one.
    with anyio.CancelScope(shield=True):
        conn.remove_termination_listener(on_lost)
        healthy = False
        if listened and not conn.is_closed():
            try:
                await conn.remove_listener(channel, wake)
                healthy = True
            except _BROKEN:
                pass
        if healthy:
            await greenlet_spawn(pooled.close)
        elif conn.is_closed():
            await forget_pool(engine, pooled, None)
        else:
            await greenlet_spawn(pooled.invalidate)
