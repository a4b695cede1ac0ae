"""Deadlines in the `deadlines` table: scheduled in a session, taken when due."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from eventcore._persistence._deadlines import Deadline
from eventcore._sqlalchemy._errors import fetch, store_error
from eventcore._sqlalchemy._schema import EventStoreTables

__all__ = ["SqlAlchemyDeadlines"]


class SqlAlchemyDeadlines:
    """Writes, lists and takes (when due) the scheduled deadlines."""

    def __init__(self, engine: AsyncEngine, tables: EventStoreTables) -> None:
        self._engine = engine
        self._table = t = tables.deadlines
        self._columns = (
            t.c.id,
            t.c.stream_id,
            t.c.stream_type,
            t.c.due_at,
            t.c.event_type,
            t.c.schema_version,
            t.c.data,
            t.c.metadata,
            t.c.created_at,
        )

    async def schedule(self, conn: AsyncConnection, deadline: Deadline) -> None:
        """Insert `deadline` in the caller's transaction."""
        values = {column.name: getattr(deadline, column.name) for column in self._columns}
        await self._execute(conn, insert(self._table).values(values), "cannot schedule")

    async def cancel(self, conn: AsyncConnection, deadline_ids: Collection[uuid.UUID]) -> None:
        """Delete deadlines in the caller's transaction."""
        statement = self._table.delete().where(self._table.c.id.in_(list(deadline_ids)))
        await self._execute(conn, statement, "cannot cancel")

    async def take_due(self, conn: AsyncConnection, now: datetime, limit: int) -> list[Deadline]:
        """Delete and return up to `limit` deadlines due at `now`, in the caller's transaction.

        On PostgreSQL the rows are locked with `SKIP LOCKED`: concurrent callers take
        different deadlines, never wait for each other, and never take one twice.
        """
        t = self._table
        due = (
            select(t.c.id)
            .where(t.c.due_at <= now)
            .order_by(t.c.due_at, t.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        statement = t.delete().where(t.c.id.in_(due.scalar_subquery())).returning(*self._columns)
        try:
            rows = (await conn.execute(statement)).all()
        except SQLAlchemyError as error:
            raise store_error("cannot take due deadlines", error) from error
        return sorted((_deadline(tuple(row)) for row in rows), key=lambda d: (d.due_at, d.id))

    async def load_all(self, stream_id: str | None = None) -> list[Deadline]:
        """The scheduled deadlines (of `stream_id`, if given), the earliest first."""
        t = self._table
        query = select(*self._columns).order_by(t.c.due_at, t.c.id)
        if stream_id is not None:
            query = query.where(t.c.stream_id == stream_id)
        rows = await fetch(self._engine, "cannot read deadlines", query)
        return [_deadline(tuple(row)) for row in rows]

    async def _execute(self, conn: AsyncConnection, statement: Any, message: str) -> None:
        try:
            await conn.execute(statement)
        except SQLAlchemyError as error:
            raise store_error(f"{message} a deadline", error) from error


def _deadline(row: tuple[Any, ...]) -> Deadline:
    id, stream_id, stream_type, due_at, event_type, version, data, meta, created_at = row
    return Deadline(
        id, stream_id, stream_type, _utc(due_at), event_type, version, data, meta, _utc(created_at)
    )


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite keeps no zone
