"""`SqlAlchemySnapshotStore`: the latest snapshot of each stream, in the snapshots table."""

from __future__ import annotations

from datetime import UTC

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from eventcore._exceptions import SchemaError, StoreError
from eventcore._persistence._snapshots import Snapshot
from eventcore._sqlalchemy._schema import EventStoreTables

__all__ = ["SqlAlchemySnapshotStore"]


class SqlAlchemySnapshotStore:
    """A [`SnapshotStore`][eventcore.SnapshotStore] in the event store's database."""

    def __init__(self, engine: AsyncEngine, tables: EventStoreTables) -> None:
        self._engine = engine
        self._table = tables.snapshots
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert

    async def get(self, stream_id: str) -> Snapshot | None:
        """Return the latest snapshot of `stream_id`, if any."""
        t = self._table
        query = select(
            t.c.aggregate_type, t.c.version, t.c.schema_version, t.c.state, t.c.recorded_at
        ).where(t.c.stream_id == stream_id)
        try:
            async with self._engine.connect() as conn:
                row = (await conn.execute(query)).first()
        except SQLAlchemyError as error:
            raise _store_error(f"cannot read snapshot of {stream_id!r}", error) from error
        if row is None:
            return None
        aggregate_type, version, schema_version, state, recorded_at = row
        if recorded_at is not None and recorded_at.tzinfo is None:
            recorded_at = recorded_at.replace(tzinfo=UTC)
        return Snapshot(stream_id, aggregate_type, version, schema_version, state, recorded_at)

    async def save(self, snapshot: Snapshot) -> None:
        """Store `snapshot` unless the stored one is at a later version."""
        t = self._table
        values = {
            "stream_id": snapshot.stream_id,
            "aggregate_type": snapshot.aggregate_type,
            "version": snapshot.version,
            "schema_version": snapshot.schema_version,
            "state": dict(snapshot.state),
            "recorded_at": snapshot.recorded_at,
        }
        statement = self._insert(t).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=[t.c.stream_id],
            set_={k: statement.excluded[k] for k in values if k != "stream_id"},
            where=t.c.version <= statement.excluded.version,
        )
        try:
            async with self._engine.begin() as conn:
                await conn.execute(statement)
        except SQLAlchemyError as error:
            raise _store_error(f"cannot save snapshot of {snapshot.stream_id!r}", error) from error


def _store_error(message: str, error: SQLAlchemyError) -> StoreError:
    """A missing table is a `SchemaError`, as for the event tables; the rest `StoreError`."""
    orig = getattr(error, "orig", None)
    if getattr(orig, "sqlstate", None) == "42P01" or "no such table" in str(error):
        return SchemaError(f"{message}: {error!r} (run create_schema() or your migrations)")
    return StoreError(f"{message}: {error!r}")
