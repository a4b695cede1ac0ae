"""Projectors' dead letters in the `dead_letters` table, written in the projector's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from eventcore._domain._metadata import RecordedEvent
from eventcore._persistence._dead_letters import DeadLetter
from eventcore._sqlalchemy._errors import fetch, store_error
from eventcore._sqlalchemy._schema import EventStoreTables

__all__ = ["SqlAlchemyDeadLetters"]


class SqlAlchemyDeadLetters:
    """Parks, lists and releases the events projectors could not handle."""

    def __init__(self, engine: AsyncEngine, tables: EventStoreTables) -> None:
        self._engine = engine
        self._table = tables.dead_letters
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert

    async def park(
        self,
        conn: AsyncConnection,
        projector: str,
        recorded: RecordedEvent,
        error: str,
        attempts: int,
    ) -> None:
        """Insert (or count one more failure of) a dead letter, in the caller's transaction."""
        t = self._table
        letter = DeadLetter.of(projector, recorded, error, attempts, datetime.now(UTC))
        statement = self._insert(t).values(
            projector=letter.projector,
            event_id=letter.event_id,
            stream_id=letter.stream_id,
            version=letter.version,
            event_type=letter.event_type,
            transaction_id=letter.transaction_id,
            global_position=letter.global_position,
            error=letter.error,
            attempts=letter.attempts,
            parked_at=letter.parked_at,
        )
        statement = statement.on_conflict_do_update(
            index_elements=[t.c.projector, t.c.event_id],
            set_={
                "error": statement.excluded.error,
                "attempts": t.c.attempts + statement.excluded.attempts,
            },
        )
        await self._execute(conn, statement, f"cannot park event {recorded.event_id}")

    async def release(self, conn: AsyncConnection, projector: str, event_id: uuid.UUID) -> None:
        """Delete a dead letter, in the caller's transaction."""
        t = self._table
        statement = t.delete().where(t.c.projector == projector, t.c.event_id == event_id)
        await self._execute(conn, statement, f"cannot release event {event_id}")

    async def parked_streams(
        self, conn: AsyncConnection, projector: str, stream_ids: Collection[str]
    ) -> set[str]:
        """Which of `stream_ids` have dead letters of `projector`."""
        t = self._table
        query = (
            select(t.c.stream_id)
            .distinct()
            .where(t.c.projector == projector, t.c.stream_id.in_(list(stream_ids)))
        )
        try:
            return set((await conn.execute(query)).scalars())
        except SQLAlchemyError as error:
            raise store_error("cannot read dead letters", error) from error

    async def load_all(self, projector: str | None = None) -> list[DeadLetter]:
        """The dead letters of `projector` (all of them when `None`), in log order."""
        t = self._table
        query = select(
            t.c.projector,
            t.c.event_id,
            t.c.stream_id,
            t.c.version,
            t.c.event_type,
            t.c.transaction_id,
            t.c.global_position,
            t.c.error,
            t.c.attempts,
            t.c.parked_at,
        ).order_by(t.c.transaction_id, t.c.global_position, t.c.projector)
        if projector is not None:
            query = query.where(t.c.projector == projector)
        rows = await fetch(self._engine, "cannot read dead letters", query)
        return [_letter(tuple(row)) for row in rows]

    async def _execute(self, conn: AsyncConnection, statement: Any, message: str) -> None:
        try:
            await conn.execute(statement)
        except SQLAlchemyError as error:
            raise store_error(message, error) from error


def _letter(row: tuple[Any, ...]) -> DeadLetter:
    projector, event_id, stream_id, version, event_type, tx, position, error, attempts, at = row
    at = at if at.tzinfo else at.replace(tzinfo=UTC)  # SQLite keeps no time zone
    return DeadLetter(
        projector, event_id, stream_id, version, event_type, tx, position, error, attempts, at
    )
