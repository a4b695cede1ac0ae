"""`PostgresOutbox`: the relay's claims and settlements sent to asyncpg directly.

A relay claims and settles hundreds of messages at a time. Through SQLAlchemy,
processing the claimed rows (result processors, row objects, greenlet hops) costs the
relay's event loop a third as much again as publishing them. Here the same statements,
compiled once by SQLAlchemy for the asyncpg dialect, run on a pooled connection's
asyncpg connection, and the rows become messages directly. Everything else, and a
settlement with failures (rare), goes through `SqlAlchemyOutbox`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

import anyio
import asyncpg
from sqlalchemy.engine.interfaces import PoolProxiedConnection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from eventcore._exceptions import StoreConnectionError, StoreError
from eventcore._messaging._message import Message
from eventcore._messaging._outbox import OutboxEntry, Settlement
from eventcore._persistence._payload_cipher import PayloadCipher
from eventcore._sqlalchemy._errors import forget_pool
from eventcore._sqlalchemy._outbox import SqlAlchemyOutbox, in_order
from eventcore._sqlalchemy._postgres_errors import CONNECTION_ERRORS, LostRace, translate
from eventcore._sqlalchemy._schema import EventStoreTables

__all__ = ["PostgresOutbox"]

T = TypeVar("T")


class _Compiled:
    """A SQLAlchemy statement compiled once for asyncpg: its SQL and parameter order."""

    def __init__(self, engine: AsyncEngine, statement: Any) -> None:
        compiled = statement.compile(dialect=engine.dialect)
        self.sql: str = compiled.string
        self._names: tuple[str, ...] = tuple(compiled.positiontup or ())
        self._fixed: dict[str, Any] = dict(compiled.params)  # values in the statement

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        """The positional arguments, from `params` or the statement's own values."""
        return [params[n] if n in params else self._fixed[n] for n in self._names]


class PostgresOutbox(SqlAlchemyOutbox):
    """A `SqlAlchemyOutbox` on PostgreSQL with asyncpg, claiming and settling via asyncpg.

    The statements, and so the behaviour, are `SqlAlchemyOutbox`'s.
    """

    def __init__(
        self, engine: AsyncEngine, tables: EventStoreTables, cipher: PayloadCipher | None = None
    ) -> None:
        super().__init__(engine, tables, cipher)
        self._fast_candidates = _Compiled(engine, self._candidates)
        self._fast_queued = _Compiled(engine, self._queued)
        self._fast_claim = _Compiled(engine, self._mark_claimed)
        self._fast_sent = _Compiled(engine, self._mark_sent)

    async def claim(
        self,
        relay_id: str,
        lanes: Collection[int],
        limit: int,
        visibility: timedelta,
        in_flight: Collection[int] = (),
    ) -> list[OutboxEntry]:
        """Claim up to `limit` publishable messages of `lanes`, oldest first (see
        [`SqlAlchemyOutbox.claim`][eventcore.SqlAlchemyOutbox.claim])."""
        if not lanes:
            return []
        now = datetime.now(UTC)
        flying = list(in_flight)
        params: dict[str, Any] = {
            "me": relay_id,
            "now": now,
            "until": now + visibility,
            "lanes": list(lanes),
            "limit": limit,
            "in_flight": flying,
        }

        async def claim(conn: asyncpg.Connection) -> list[Any]:
            async with conn.transaction():
                statement = self._fast_candidates
                candidates = await conn.fetch(statement.sql, *statement.args(params))
                if not candidates:
                    return []
                params["keys"] = sorted({key for _, key in candidates})
                params["last"] = candidates[-1][0]
                statement = self._fast_queued
                queue = await conn.fetch(statement.sql, *statement.args(params))
                chosen = in_order({p for p, _ in candidates}, queue, set(flying))
                if not chosen:
                    return []
                params["positions"] = chosen
                statement = self._fast_claim
                return await conn.fetch(statement.sql, *statement.args(params))

        rows = await self._on_driver("cannot claim outbox messages", claim)
        rows.sort(key=lambda row: row[0])
        return await self.opened([_entry(row) for row in rows])

    async def settle(self, relay_id: str, settlement: Settlement) -> None:
        """Record which claimed messages were sent and which failed (see `Outbox`)."""
        if settlement.failed:
            await super().settle(relay_id, settlement)
            return
        if not settlement.sent:
            return
        statement = self._fast_sent
        args = statement.args({"positions": list(settlement.sent), "now": datetime.now(UTC)})

        async def mark_sent(conn: asyncpg.Connection) -> None:
            await conn.execute(statement.sql, *args)

        await self._on_driver("cannot settle outbox messages", mark_sent)

    async def _on_driver(
        self, what: str, operation: Callable[[asyncpg.Connection], Awaitable[T]]
    ) -> T:
        """Run `operation` on a pooled connection's asyncpg connection; database errors
        become `StoreError`s starting with `what`.

        If that connection was lost, so likely were the pool's others: the pool replaces
        them (see `forget_pool`) and `operation` runs once more on a fresh connection.
        Claims and settlements are safe to repeat: a relay claims again what it claimed.
        """
        try:
            return await self._once(what, operation)
        except _Lost:
            pass
        try:
            return await self._once(what, operation)
        except _Lost as lost:
            raise lost.error from lost.error.__cause__

    async def _once(self, what: str, operation: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        pooled: PoolProxiedConnection | None
        try:
            pooled = await self._engine.raw_connection()
        except Exception as error:
            raise StoreConnectionError(f"{what}: cannot connect: {error!r}") from error
        reusable = False
        driver = cast("asyncpg.Connection", pooled.driver_connection)
        try:
            result = await operation(driver)
            reusable = True
            return result
        except CONNECTION_ERRORS as error:
            lost = StoreConnectionError(f"{what}: {error!r}")
            lost.__cause__ = error
            with anyio.CancelScope(shield=True):
                await forget_pool(self._engine, pooled, error)
            pooled = None
            raise _Lost(lost) from error
        except asyncpg.PostgresError as error:
            reusable = True  # its transaction was rolled back
            failure = translate(error)
            if isinstance(failure, LostRace):
                failure = StoreError(f"PostgreSQL error: {error!r}")
            raise type(failure)(f"{what}: {failure}") from error
        finally:
            # A connection left mid-statement (a cancellation, say) is closed, never
            # pooled. Shielded: a cancelled caller must not leave it checked out.
            if pooled is not None:
                with anyio.CancelScope(shield=True):
                    await greenlet_spawn(pooled.close if reusable else pooled.invalidate)


class _Lost(Exception):
    def __init__(self, error: StoreConnectionError) -> None:
        super().__init__(str(error))
        self.error = error


def _entry(row: Any) -> OutboxEntry:
    # asyncpg's UUIDs are `uuid.UUID`s (a subclass, equal and hashing alike) with a ten
    # times faster `str()`: kept as they are.
    message = Message(row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8])
    return OutboxEntry(row[0], message, row[9], row[10])
