"""`SqlBulkInbox`: the store's inbox table, many message ids at a time.

The same rows as the `SqlAlchemyInbox` a `ConsumerWorker` writes one at a time, so a
message loaded in bulk and later delivered by the broker (or the other way round) is
handled once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from eventcore import SqlAlchemyEventStore

__all__ = ["SqlBulkInbox"]

_CHUNK = 500  # ids per IN (...) list


class SqlBulkInbox:
    """The `BulkInbox` of the application layer, on the store's `inbox` table."""

    def __init__(self, store: SqlAlchemyEventStore) -> None:
        self._table = store.tables.inbox

    async def unseen(
        self, connection: AsyncConnection, consumer: str, message_ids: Sequence[uuid.UUID]
    ) -> set[uuid.UUID]:
        """Which of `message_ids` `consumer` has not handled."""
        t = self._table
        seen: set[uuid.UUID] = set()
        for start in range(0, len(message_ids), _CHUNK):
            chunk = list(message_ids[start : start + _CHUNK])
            query = select(t.c.message_id).where(
                t.c.consumer == consumer, t.c.message_id.in_(chunk)
            )
            seen.update((await connection.execute(query)).scalars())
        return set(message_ids) - seen

    async def record_many(
        self, connection: AsyncConnection, consumer: str, message_ids: Sequence[uuid.UUID]
    ) -> None:
        """Record `message_ids` as handled by `consumer` (one statement)."""
        if not message_ids:
            return
        now = datetime.now(UTC)
        rows = [{"consumer": consumer, "message_id": m, "handled_at": now} for m in message_ids]
        await connection.execute(insert(self._table), rows)
