"""A unit of work's transaction on PostgreSQL: SQLAlchemy's connection, asyncpg beneath it.

The session's own statements (appends, reads) go to the asyncpg connection directly, so
SQLAlchemy cannot see it when that connection is lost. Then the session throws the
connection away and makes the pool replace the others made before it (they are likely
dead too, see `forget_pool`): the next unit of work gets a fresh connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Protocol, cast

import anyio
import asyncpg
from sqlalchemy.engine.interfaces import PoolProxiedConnection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from eventcore._domain._metadata import RecordedEvent
from eventcore._exceptions import ConcurrencyError, StoreConnectionError
from eventcore._persistence._codec import PreparedAppend
from eventcore._persistence._store import AppendResult, BeforeCommit
from eventcore._sqlalchemy._errors import connection_failed, forget_pool, store_error
from eventcore._sqlalchemy._postgres_errors import CONNECTION_ERRORS, LostRace
from eventcore._sqlalchemy._session import BackendSession

__all__ = ["PostgresSession", "postgres_session"]


class _Backend(Protocol):
    """What the session needs of `PostgresBackend`."""

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
    ) -> list[RecordedEvent]: ...

    async def append_streams(
        self, appends: Sequence[PreparedAppend], conn: asyncpg.Connection | None = None
    ) -> list[AppendResult]: ...

    async def append_in_transaction(
        self, conn: asyncpg.Connection, appends: Sequence[PreparedAppend]
    ) -> list[AppendResult]: ...

    async def settle(
        self, conn: asyncpg.Connection, appends: Sequence[PreparedAppend]
    ) -> list[AppendResult] | None: ...

    async def announce(self, conn: asyncpg.Connection) -> None: ...


@asynccontextmanager
async def postgres_session(
    backend: _Backend, engine: AsyncEngine
) -> AsyncIterator[PostgresSession]:
    """A unit-of-work session on one pooled connection; rolled back unless committed."""
    try:
        conn = await engine.connect()
    except Exception as error:
        raise StoreConnectionError(f"cannot connect to PostgreSQL: {error!r}") from error
    pooled: PoolProxiedConnection | None = None
    driver: asyncpg.Connection | None = None
    lost: BaseException | None = None
    try:
        await conn.begin()
        pooled = await conn.get_raw_connection()
        driver = cast("asyncpg.Connection", pooled.driver_connection)
        yield PostgresSession(backend, conn, driver)
    except CONNECTION_ERRORS as error:
        lost = error
        raise StoreConnectionError(f"PostgreSQL connection failed: {error!r}") from error
    except StoreConnectionError as error:
        lost = error
        raise
    except SQLAlchemyError as error:
        if not connection_failed(error):
            raise
        lost = error  # on `connection`, in the unit of work's own writes, say
        raise StoreConnectionError(
            f"the unit of work's connection failed: {getattr(error, 'orig', None) or error!r}"
        ) from error
    finally:
        with anyio.CancelScope(shield=True):
            if lost is not None or (driver is not None and driver.is_closed()):
                await forget_pool(engine, pooled, lost)
                if not conn.invalidated:
                    await conn.invalidate()
            await conn.close()  # rolls back whatever was not committed


class PostgresSession(BackendSession[asyncpg.Connection]):
    """One unit of work's transaction on PostgreSQL (see `EventStoreSession`)."""

    def __init__(
        self, backend: _Backend, conn: AsyncConnection, driver: asyncpg.Connection
    ) -> None:
        super().__init__(backend, conn, driver)
        self._backend = backend

    async def commit_prepared(
        self, appends: Sequence[PreparedAppend], before_commit: BeforeCommit | None
    ) -> list[AppendResult]:
        """Append and commit together with the writes made on `connection`."""
        self._begin_commit()
        if before_commit is not None and not self._driver.is_in_transaction():
            # The hook writes in the append's transaction, so there must be one.
            await self._statement("SELECT 1")
        if not self._driver.is_in_transaction():
            # Nothing else was written: the append alone is the transaction.
            results = await self._backend.append_streams(appends, self._driver) if appends else []
            await self._commit()
            return results
        try:
            results = await self._backend.append_in_transaction(self._driver, appends)
        except LostRace:
            await self._rollback()
            settled = await self._backend.settle(self._driver, appends)
            if settled is None:
                raise ConcurrencyError(
                    "a concurrent writer appended first; retry the unit of work"
                ) from None
            return settled  # an idempotent retry: this attempt's other writes are discarded
        except BaseException:
            await self._rollback()
            raise
        if results and all(r.already_stored for r in results):
            await self._rollback()  # the earlier attempt committed these writes already
            return results
        try:
            if before_commit is not None:
                await before_commit(results)
        except BaseException:
            await self._rollback()
            raise
        await self._commit()
        if appends:
            await self._backend.announce(self._driver)
        return results

    async def announce(self) -> None:
        """Tell other processes' relays and subscribers that something was committed."""
        await self._backend.announce(self._driver)

    async def _statement(self, sql: str) -> None:
        try:
            await self._conn.exec_driver_sql(sql)
        except SQLAlchemyError as error:
            raise store_error("cannot begin the unit of work's transaction", error) from error

    async def _commit(self) -> None:
        try:
            await self._conn.commit()
        except Exception as error:
            if isinstance(error, SQLAlchemyError) and not connection_failed(error):
                raise store_error("commit failed", error) from error
            raise StoreConnectionError(f"commit failed: {error!r}") from error

    async def _rollback(self) -> None:
        """Roll back; on a lost connection there is nothing left to roll back."""
        try:
            await self._conn.rollback()
        except (SQLAlchemyError, *CONNECTION_ERRORS) as error:
            if not connection_failed(error):
                raise store_error("cannot roll back", error) from error
