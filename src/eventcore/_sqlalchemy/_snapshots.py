"""`SqlAlchemySnapshotStore`: the latest snapshot of each stream, in the snapshots table."""

from __future__ import annotations

from datetime import UTC

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from eventcore._persistence._snapshots import Snapshot
from eventcore._sqlalchemy._errors import fetch, retried
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
        rows = await fetch(self._engine, f"cannot read snapshot of {stream_id!r}", query)
        if not rows:
            return None
        row = rows[0]
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

        async def write() -> None:  # idempotent (a newer snapshot wins): retried
            async with self._engine.begin() as conn:
                await conn.execute(statement)

        await retried(f"cannot save snapshot of {snapshot.stream_id!r}", write)
