"""What the PostgreSQL and SQLite unit-of-work sessions have in common."""

from __future__ import annotations

from datetime import datetime
from typing import Generic, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from eventcore._domain._metadata import RecordedEvent
from eventcore._exceptions import UnitOfWorkError

__all__ = ["BackendSession"]

C = TypeVar("C")
C_contra = TypeVar("C_contra", contravariant=True)


class _Reader(Protocol[C_contra]):
    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int,
        to_version: int | None,
        as_of: datetime | None,
        backwards: bool,
        limit: int | None,
        conn: C_contra | None = None,
    ) -> list[RecordedEvent]: ...


class BackendSession(Generic[C]):
    """A unit of work's transaction: reads on its connection; commit in the subclass.

    `driver` is the connection the backend reads on: the asyncpg connection beneath
    `connection` on PostgreSQL, `connection` itself on SQLite.
    """

    def __init__(self, reader: _Reader[C], connection: AsyncConnection, driver: C) -> None:
        self._reader = reader
        self._conn = connection
        self._driver = driver
        self._done = False

    @property
    def connection(self) -> AsyncConnection:
        """The SQLAlchemy connection: writes made on it commit atomically with the events."""
        return self._conn

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
        """Read a stream on this session's connection (inside its transaction, if begun)."""
        return await self._reader.read_stream(
            stream_id,
            from_version=from_version,
            to_version=to_version,
            as_of=as_of,
            backwards=backwards,
            limit=limit,
            conn=self._driver,
        )

    def _begin_commit(self) -> None:
        if self._done:
            raise UnitOfWorkError("this session has already been committed or rolled back")
        self._done = True

    async def rollback(self) -> None:
        """Discard the session's writes."""
        self._done = True
        await self._conn.rollback()
