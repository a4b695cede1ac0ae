"""Subscriber checkpoints in the `checkpoints` table, written in the subscriber's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from eventcore._domain._metadata import LogPosition
from eventcore._sqlalchemy._errors import retried, store_error
from eventcore._sqlalchemy._schema import EventStoreTables

__all__ = ["SqlAlchemyCheckpoints"]


class SqlAlchemyCheckpoints:
    """Reads and writes the checkpoints of named subscribers."""

    def __init__(self, engine: AsyncEngine, tables: EventStoreTables) -> None:
        self._engine = engine
        self._table = t = tables.checkpoints
        insert = (pg_insert if engine.dialect.name == "postgresql" else sqlite_insert)(t)
        # Built once: SQLAlchemy then finds it compiled in its cache at every save.
        self._upsert = insert.on_conflict_do_update(
            index_elements=[t.c.name],
            set_={
                "transaction_id": insert.excluded.transaction_id,
                "global_position": insert.excluded.global_position,
                "updated_at": func.now(),
            },
        )

    async def load(self, name: str) -> LogPosition:
        """The checkpoint of `name` (the start of the log if it has none)."""
        return (await self.load_all([name])).get(name, LogPosition())

    async def load_all(self, names: list[str] | None = None) -> dict[str, LogPosition]:
        """The checkpoints of `names` (all of them when `None`)."""
        t = self._table
        query = select(t.c.name, t.c.transaction_id, t.c.global_position)
        if names is not None:
            query = query.where(t.c.name.in_(names))

        async def read() -> Sequence[Any]:
            async with self._engine.connect() as conn:
                return (await conn.execute(query)).all()

        rows = await retried("cannot read checkpoints", read)
        return {name: LogPosition(tx, position) for name, tx, position in rows}

    async def save(self, conn: AsyncConnection, name: str, position: LogPosition) -> None:
        """Store `name`'s checkpoint on `conn`, inside the caller's transaction."""
        values = {
            "name": name,
            "transaction_id": position.transaction_id,
            "global_position": position.global_position,
        }
        try:
            await conn.execute(self._upsert, values)
        except SQLAlchemyError as error:
            raise store_error(f"cannot save the checkpoint of {name!r}", error) from error

    async def delete(self, name: str) -> None:
        """Forget `name`'s checkpoint: it starts again from the beginning of the log."""

        async def delete() -> None:  # idempotent: retried on a lost connection
            async with self._engine.begin() as conn:
                await conn.execute(self._table.delete().where(self._table.c.name == name))

        await retried(f"cannot reset the checkpoint of {name!r}", delete)
