"""The hand-written SQL of the PostgreSQL backend (prepared once per connection by asyncpg)."""

from __future__ import annotations

from dataclasses import dataclass

from eventcore._sqlalchemy._schema import EventStoreTables

__all__ = ["PostgresSql"]

_COLUMNS = (
    "event_id, stream_type, version, global_position, recorded_at, "
    "event_type, schema_version, data::text, metadata::text"
)


@dataclass(frozen=True)
class PostgresSql:
    """Statements for one set of tables."""

    append_one_new: str
    append_one_exact: str
    append_one_relative: str
    append_many_exact: str
    append_many_relative: str
    find_ids: str
    stream_version: str
    read_forwards: str
    read_backwards: str
    read_forwards_as_of: str
    read_backwards_as_of: str
    read_all: str
    read_log: str
    log_head: str
    log_end: str
    position_of: str
    sealed_payloads: str
    notify: str = "SELECT pg_notify($1, '')"
    # The transaction that holds the log's readers back: the oldest one still open
    # that has a transaction id (it wrote), anywhere on the server.
    blocking: str = (
        "SELECT pid, datname, usename, application_name, state, "
        "extract(epoch FROM now() - xact_start)::float8, left(query, 120) "
        "FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() "
        "ORDER BY age(backend_xid) DESC LIMIT 1"
    )
    blocking_prepared: str = (
        "SELECT gid, database, extract(epoch FROM now() - prepared)::float8 "
        "FROM pg_prepared_xacts ORDER BY age(transaction) DESC LIMIT 1"
    )

    @classmethod
    def for_tables(cls, tables: EventStoreTables) -> PostgresSql:
        """Build the statements for `tables`."""
        ev = tables.qualified(tables.events)
        read = f"SELECT {_COLUMNS} FROM {ev} WHERE stream_id = $1 AND version BETWEEN $2 AND $3"
        as_of = " AND recorded_at <= $5"
        return cls(
            append_one_new=(
                f"INSERT INTO {ev} (event_id, stream_id, stream_type, version, event_type, "
                "schema_version, data, metadata) VALUES ($2, $1, $3, 1, $4, $5, $6::jsonb, "
                "coalesce($7, '{}')::jsonb) RETURNING global_position, version"
            ),
            append_one_exact=_append_sql(ev, _ONE, exact=True),
            append_one_relative=_append_sql(ev, _ONE, exact=False),
            append_many_exact=_append_sql(ev, _MANY, exact=True),
            append_many_relative=_append_sql(ev, _MANY, exact=False),
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
                f"SELECT {_COLUMNS}, stream_id FROM {ev} WHERE global_position > $1 "
                "AND ($3::text[] IS NULL OR event_type = ANY($3)) "
                "AND ($4::text[] IS NULL OR stream_type = ANY($4)) "
                "ORDER BY global_position LIMIT $2"
            ),
            log_head=f"SELECT coalesce(max(global_position), 0) FROM {ev}",
            # What snapshots of a stream with personal data depend on (see SealedSnapshotStore).
            sealed_payloads=(
                f"SELECT data::text FROM {ev} WHERE stream_id = $1 AND version > $2 "
                "AND version <= $3 AND data::text LIKE '%\"eventcore:pii\"%'"
            ),
            log_end=(
                f"SELECT transaction_id::text::bigint, global_position FROM {ev} "
                "ORDER BY transaction_id DESC, global_position DESC LIMIT 1"
            ),
            position_of=(
                f"SELECT transaction_id::text::bigint FROM {ev} WHERE global_position = $1"
            ),
            # Only transactions older than the oldest one still running: those can no
            # longer commit anything, so nothing will ever appear before what we return.
            read_log=(
                # The converted id gets its own name: were it `transaction_id`, ORDER BY
                # would sort by it and could not use the (transaction_id, position) index.
                f"SELECT {_COLUMNS}, stream_id, transaction_id::text::bigint AS tx FROM {ev} "
                "WHERE (transaction_id, global_position) > ($1::text::xid8, $2::bigint) "
                "AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) "
                "AND ($4::text[] IS NULL OR event_type = ANY($4)) "
                "AND ($5::text[] IS NULL OR stream_type = ANY($5)) "
                "ORDER BY transaction_id, global_position LIMIT $3"
            ),
        )


# Where the appended rows come from: one event as scalar parameters (no arrays to
# encode), or many as arrays. $1 stream id, $2 event ids, $3 stream type, $4 event
# types, $5 schema versions, $6 payloads, $7 metadata (NULL: all empty), $8 the version.
_ONE = (
    "SELECT $2::uuid AS event_id, $4::text AS event_type, $5::int AS schema_version, "
    "$6::text AS data, $7::text AS metadata, 1::bigint AS n"
)
_MANY = (
    "SELECT * FROM unnest($2::uuid[], $4::text[], $5::int[], $6::text[], $7::text[]) "
    "WITH ORDINALITY AS e(event_id, event_type, schema_version, data, metadata, n)"
)


def _append_sql(ev: str, rows: str, *, exact: bool) -> str:
    """One statement, so one round trip and one implicit transaction: all rows or none.

    Exact expected version ($8 = n): the events become n + 1, n + 2, ...; the guard
    checks that version n exists (written by an older transaction), and the unique
    (stream_id, version) index refuses the append if the stream is already past n.
    Relative ($8 = 0 for ANY, 1 for STREAM_EXISTS): the events go after the stream's
    last version. Fewer rows back
    than events means the guard refused. A concurrent writer that gets there first, or
    event ids stored before (an idempotent retry), make the insert fail on a unique
    index; the caller then settles what happened.
    """
    # The stream's last event must come from an older transaction than this one, so
    # that the log (in transaction id order) keeps each stream in version order. A
    # transaction that took its id before another appended to the stream is refused;
    # it is a conflict, and a retry runs in a newer transaction.
    in_order = "(last.transaction_id IS NULL OR last.transaction_id <= pg_current_xact_id())"
    if exact:
        version = "$8::bigint + e.n"
        source = f"({rows}) AS e"
        guard = (
            f"$8::bigint = 0 OR EXISTS (SELECT 1 FROM {ev} AS last "
            f"WHERE last.stream_id = $1::text AND last.version = $8::bigint AND {in_order})"
        )
    else:
        version = "coalesce(last.version, 0) + e.n"
        source = (
            f"(SELECT 1) AS one LEFT JOIN LATERAL (SELECT version, transaction_id FROM {ev} "
            "WHERE stream_id = $1::text ORDER BY version DESC LIMIT 1) AS last ON true, "
            f"({rows}) AS e"
        )
        guard = f"($8::int = 0 OR last.version IS NOT NULL) AND {in_order}"
    return f"""
INSERT INTO {ev}
    (event_id, stream_id, stream_type, version, event_type, schema_version, data, metadata)
SELECT e.event_id, $1::text, $3::text, {version}, e.event_type, e.schema_version,
       e.data::jsonb, coalesce(e.metadata, '{{}}')::jsonb
FROM {source}
WHERE {guard}
RETURNING global_position, version
"""
