"""The hand-written SQL of the PostgreSQL backend (prepared once per connection by asyncpg)."""

from __future__ import annotations

from dataclasses import dataclass

from eventcore._sqlalchemy._schema import EventStoreTables

__all__ = ["MODE_ANY", "MODE_EXACT", "MODE_NO_STREAM", "MODE_STREAM_EXISTS", "PostgresSql"]

# How the append statement checks the stream's current version ($8).
MODE_ANY = 0
MODE_EXACT = 1
MODE_STREAM_EXISTS = 2
MODE_NO_STREAM = 3

_COLUMNS = (
    "event_id, stream_type, version, global_position, recorded_at, "
    "event_type, schema_version, data::text, metadata::text"
)


@dataclass(frozen=True)
class PostgresSql:
    """Statements for one set of tables."""

    append: str
    find_ids: str
    stream_version: str
    read_forwards: str
    read_backwards: str
    read_forwards_as_of: str
    read_backwards_as_of: str
    read_all: str

    @classmethod
    def for_tables(cls, tables: EventStoreTables) -> PostgresSql:
        """Build the statements for `tables`."""
        ev = tables.qualified(tables.events)
        read = f"SELECT {_COLUMNS} FROM {ev} WHERE stream_id = $1 AND version BETWEEN $2 AND $3"
        as_of = " AND recorded_at <= $5"
        return cls(
            append=_append_sql(ev),
            find_ids=(
                f"SELECT event_id, stream_id, global_position FROM {ev} "
                "WHERE event_id = ANY($1::uuid[])"
            ),
            stream_version=f"SELECT coalesce(max(version), 0) FROM {ev} WHERE stream_id = $1",
            read_forwards=f"{read} ORDER BY version LIMIT $4",
            read_backwards=f"{read} ORDER BY version DESC LIMIT $4",
            read_forwards_as_of=f"{read}{as_of} ORDER BY version LIMIT $4",
            read_backwards_as_of=f"{read}{as_of} ORDER BY version DESC LIMIT $4",
            read_all=(
                f"SELECT stream_id, {_COLUMNS} FROM {ev} WHERE global_position > $1 "
                "AND ($3::text[] IS NULL OR event_type = ANY($3)) "
                "AND ($4::text[] IS NULL OR stream_type = ANY($4)) "
                "ORDER BY global_position LIMIT $2"
            ),
        )


def _append_sql(ev: str) -> str:
    # One round trip, one implicit transaction: check the stream's version, then insert
    # all events or none. Kept simple on purpose: planning is part of every call.
    # Fewer rows than events back means the version guard refused. A concurrent writer
    # that wins the race, or an event id stored before (an idempotent retry), makes the
    # insert fail on a unique index; the caller then settles what happened.
    return f"""
WITH cur AS (
    SELECT coalesce(max(version), 0) AS v FROM {ev} WHERE stream_id = $1
)
INSERT INTO {ev}
    (event_id, stream_id, stream_type, version, event_type, schema_version, data, metadata)
SELECT e.event_id, $1, $3, cur.v + e.n, e.event_type, e.schema_version,
       e.data::jsonb, e.metadata::jsonb
FROM cur, unnest($2::uuid[], $4::text[], $5::int[], $6::text[], $7::text[])
     WITH ORDINALITY AS e(event_id, event_type, schema_version, data, metadata, n)
WHERE CASE $8::int
        WHEN {MODE_EXACT} THEN cur.v = $9::bigint
        WHEN {MODE_STREAM_EXISTS} THEN cur.v > 0
        WHEN {MODE_NO_STREAM} THEN cur.v = 0
        ELSE true
      END
RETURNING global_position, version
"""
