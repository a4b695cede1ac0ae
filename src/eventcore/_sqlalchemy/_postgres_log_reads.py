"""Reads of the log that walk its index, even when the table's statistics mislead.

A read of the log asks for rows after a position in index order (`ORDER BY` the
`(transaction_id, global_position)` index, or the global position), filtered by event
and stream types, `LIMIT` a batch: walking the index and stopping after a batch is
always the right plan. But on a table just bulk-loaded and not analysed yet (its JSON
columns make the planner think it holds a tenth of its rows), or analysed before the
load, the planner expects a filtered read to match a handful of rows: it fetches every
match and sorts them, a hundred times slower on a large log (and every read does when
statements are planned for their parameters each time, behind a transaction pooler).

So while the events table's statistics are missing or stale (more rows changed since
the last `ANALYZE` than autovacuum waits for), each read runs with sorting switched off
for its statement (`SET LOCAL`, in a read-only transaction of its own: two round trips
more, safe behind a pooler). The index, the only other way to the order asked for, is
then walked whatever the statistics say. Whether they are fresh is looked up at most
every `_RECHECK` seconds; with fresh statistics the read is the bare statement.
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg

from eventcore._sqlalchemy._postgres_errors import translated_errors
from eventcore._sqlalchemy._schema import EventStoreTables

__all__ = ["LogReads"]

_RECHECK = 10.0  # seconds between two looks at the table's statistics
_INDEX_ORDER = "BEGIN READ ONLY; SET LOCAL enable_sort = off"
# Missing: never analysed (reltuples -1), or no statistics on event_type. Stale: more
# rows changed since the last ANALYZE than autovacuum's default threshold to analyse.
_STALE = """
SELECT c.reltuples < 0
    OR NOT EXISTS (SELECT FROM pg_stats s WHERE s.schemaname = n.nspname
                   AND s.tablename = c.relname AND s.attname = 'event_type')
    OR coalesce(pg_stat_get_mod_since_analyze(c.oid) > 50 + 0.1 * greatest(c.reltuples, 0),
                true)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass($1)
"""


class LogReads:
    """Fetches reads of one store's log in index order (see the module)."""

    def __init__(self, tables: EventStoreTables) -> None:
        self._table = tables.qualified(tables.events)
        self._guarded = True
        self._checked_at = float("-inf")

    def recheck(self) -> None:
        """Look at the statistics again before the next read."""
        self._checked_at = float("-inf")

    async def fetch(
        self, conn: asyncpg.Connection, *, query: str, args: tuple[Any, ...]
    ) -> list[asyncpg.Record]:
        """Fetch `query`'s rows, walking the index (see the module)."""
        with translated_errors():
            if await self._statistics_stale(conn):
                return await _fetch_with_sorting_off(conn, query, args)
            rows: list[asyncpg.Record] = await conn.fetch(query, *args)
        return rows

    async def _statistics_stale(self, conn: asyncpg.Connection) -> bool:
        now = time.monotonic()
        if now - self._checked_at >= _RECHECK:
            self._checked_at = now
            self._guarded = bool(await conn.fetchval(_STALE, self._table) is not False)
        return self._guarded


async def _fetch_with_sorting_off(
    conn: asyncpg.Connection, query: str, args: tuple[Any, ...]
) -> list[asyncpg.Record]:
    await conn.execute(_INDEX_ORDER)
    try:
        rows: list[asyncpg.Record] = await conn.fetch(query, *args)
    except asyncpg.PostgresError:
        await conn.execute("ROLLBACK")  # the connection stays usable
        raise
    await conn.execute("COMMIT")
    return rows
