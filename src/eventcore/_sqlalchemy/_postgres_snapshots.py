"""Snapshots on PostgreSQL through the store's kept asyncpg connections (no ORM overhead)."""

from __future__ import annotations

import json

import asyncpg

from eventcore._exceptions import StoreError
from eventcore._persistence._snapshots import Snapshot
from eventcore._sqlalchemy._lease import ConnectionLease
from eventcore._sqlalchemy._postgres_errors import translate
from eventcore._sqlalchemy._schema import EventStoreTables

__all__ = ["PostgresSnapshotStore"]


class PostgresSnapshotStore:
    """A [`SnapshotStore`][eventcore.SnapshotStore] for `SqlAlchemyEventStore` on PostgreSQL."""

    def __init__(self, lease: ConnectionLease, tables: EventStoreTables) -> None:
        self._lease = lease
        table = tables.qualified(tables.snapshots)
        self._select = (
            "SELECT aggregate_type, version, schema_version, state::text, recorded_at "
            f"FROM {table} WHERE stream_id = $1"
        )
        self._upsert = (
            f"INSERT INTO {table} AS s (stream_id, aggregate_type, version, schema_version, "
            "state, recorded_at) VALUES ($1, $2, $3, $4, $5::jsonb, $6) "
            "ON CONFLICT (stream_id) DO UPDATE SET aggregate_type = excluded.aggregate_type, "
            "version = excluded.version, schema_version = excluded.schema_version, "
            "state = excluded.state, recorded_at = excluded.recorded_at, taken_at = now() "
            "WHERE s.version <= excluded.version"
        )

    async def get(self, stream_id: str) -> Snapshot | None:
        """Return the latest snapshot of `stream_id`, if any."""
        row = await self._lease.run(lambda conn: self._fetch(conn, stream_id))
        if row is None:
            return None
        aggregate_type, version, schema_version, state, recorded_at = row
        return Snapshot(
            stream_id, aggregate_type, version, schema_version, json.loads(state), recorded_at
        )

    async def _fetch(self, conn: asyncpg.Connection, stream_id: str) -> asyncpg.Record | None:
        try:
            row: asyncpg.Record | None = await conn.fetchrow(self._select, stream_id)
        except asyncpg.PostgresError as error:
            raise _store_error(f"cannot read snapshot of {stream_id!r}", error) from error
        return row

    async def save(self, snapshot: Snapshot) -> None:
        """Store `snapshot` unless the stored one is at a later version."""
        state = json.dumps(dict(snapshot.state))
        await self._lease.run(lambda conn: self._write(conn, snapshot, state))

    async def _write(self, conn: asyncpg.Connection, snapshot: Snapshot, state: str) -> None:
        try:
            await conn.execute(
                self._upsert,
                snapshot.stream_id,
                snapshot.aggregate_type,
                snapshot.version,
                snapshot.schema_version,
                state,
                snapshot.recorded_at,
            )
        except asyncpg.PostgresError as error:
            raise _store_error(f"cannot save snapshot of {snapshot.stream_id!r}", error) from error


def _store_error(message: str, error: asyncpg.PostgresError) -> StoreError:
    failure = translate(error)
    if isinstance(failure, StoreError):
        return type(failure)(f"{message}: {failure}")
    return StoreError(f"{message}: {error!r}")
