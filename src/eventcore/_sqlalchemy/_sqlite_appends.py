"""A multi-stream append on SQLite in a few statements, whatever the number of streams.

Appending stream by stream costs three statements each (the ids already stored, the
stream's version, the insert), and on aiosqlite every statement is a round trip to its
thread. A unit of work that commits hundreds of new aggregates (a catalogue loaded at
start-up) or two (a registration: a section and a schedule) instead asks for the
stored ids and the versions of all its streams at once, and inserts all its events
with one statement. The checks are the same, stream by stream, in the given order.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from eventcore._persistence._codec import PreparedAppend
from eventcore._persistence._store import AppendResult
from eventcore._persistence._versioning import (
    check_all_or_none_stored,
    check_already_stored,
    check_expected_version,
)

__all__ = ["append_many"]

_CHUNK = 500  # values per IN (...) list, well below SQLite's limit on bound parameters


async def append_many(
    conn: AsyncConnection, events: Table, insert: Any, appends: Sequence[PreparedAppend]
) -> list[AppendResult]:
    """Append to every stream of `appends` (distinct streams) inside `conn`'s transaction.

    `insert` is the backend's insert statement, returning the global positions in the
    order of its rows.
    """
    ids = [e.event_id for append in appends for e in append.events]
    stored = await _stored(conn, events, ids)
    versions = await _versions(conn, events, [a.stream_id for a in appends])
    results: list[AppendResult | None] = []
    rows: list[dict[str, Any]] = []
    now = datetime.now(UTC)
    for append in appends:
        current = versions.get(append.stream_id, 0)
        mine = [e.event_id for e in append.events]
        existing = [stored[event_id] for event_id in mine if event_id in stored]
        already = check_already_stored(append.stream_id, mine, existing, current)
        if already is not None:
            results.append(already)
            continue
        check_expected_version(append.stream_id, append.expected_version, current)
        results.append(None)
        rows.extend(
            {
                "event_id": e.event_id,
                "stream_id": append.stream_id,
                "stream_type": append.stream_type,
                "version": current + n,
                "event_type": e.event_type,
                "schema_version": e.schema_version,
                "data": e.data,
                "meta": e.metadata,
                "recorded_at": now,
            }
            for n, e in enumerate(append.events, start=1)
        )
    check_all_or_none_stored(results)
    positions = list((await conn.execute(insert, rows)).scalars()) if rows else []
    return _results(appends, results, versions, positions)


def _results(
    appends: Sequence[PreparedAppend],
    results: list[AppendResult | None],
    versions: dict[str, int],
    positions: list[int],
) -> list[AppendResult]:
    done, offset = [], 0
    for append, result in zip(appends, results, strict=True):
        if result is not None:
            done.append(result)
            continue
        count = len(append.events)
        current = versions.get(append.stream_id, 0)
        mine = tuple(positions[offset : offset + count])
        offset += count
        done.append(AppendResult(append.stream_id, current + count, mine))
    return done


async def _stored(
    conn: AsyncConnection, events: Table, ids: list[uuid.UUID]
) -> dict[uuid.UUID, tuple[uuid.UUID, str, int]]:
    """`(event_id, stream_id, global_position)` of those of `ids` stored already."""
    found: dict[uuid.UUID, tuple[uuid.UUID, str, int]] = {}
    ev = events
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        query = select(ev.c.event_id, ev.c.stream_id, ev.c.global_position).where(
            ev.c.event_id.in_(chunk)
        )
        for event_id, stream_id, position in await conn.execute(query):
            found[event_id] = (event_id, stream_id, position)
    return found


async def _versions(conn: AsyncConnection, events: Table, streams: list[str]) -> dict[str, int]:
    """The current version of each of `streams` that exists."""
    ev = events
    versions: dict[str, int] = {}
    for start in range(0, len(streams), _CHUNK):
        chunk = streams[start : start + _CHUNK]
        query = (
            select(ev.c.stream_id, func.max(ev.c.version))
            .where(ev.c.stream_id.in_(chunk))
            .group_by(ev.c.stream_id)
        )
        for stream_id, version in await conn.execute(query):
            versions[stream_id] = int(version)
    return versions
