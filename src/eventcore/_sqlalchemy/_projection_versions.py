"""The active version of each projection, in the `projections` table (one row per name)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from eventcore._persistence._projection_versions import check_activation
from eventcore._sqlalchemy._errors import fetch, retried
from eventcore._sqlalchemy._schema import EventStoreTables

__all__ = ["SqlAlchemyProjectionVersions"]


class SqlAlchemyProjectionVersions:
    """Reads and switches the versions of read models that serve readers."""

    def __init__(self, engine: AsyncEngine, tables: EventStoreTables) -> None:
        self._engine = engine
        self._table = tables.projections
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert

    async def load_all(self) -> dict[str, int]:
        """The active version of every projection that has one recorded."""
        t = self._table
        query = select(t.c.name, t.c.active_version)
        rows = await fetch(self._engine, "cannot read the active projection versions", query)
        return {str(name): int(version) for name, version in rows}

    async def activate(self, name: str, version: int) -> None:
        """Make `version` the active one of projection `name` (one row, one statement)."""
        check_activation(name, version)
        t = self._table
        statement = self._insert(t).values(name=name, active_version=version)
        statement = statement.on_conflict_do_update(
            index_elements=[t.c.name],
            set_={"active_version": statement.excluded.active_version, "switched_at": func.now()},
        )

        async def switch() -> None:  # idempotent: retried on a lost connection
            async with self._engine.begin() as conn:
                await conn.execute(statement)

        await retried(f"cannot activate version {version} of {name!r}", switch)
