"""`SqlAlchemyDataKeyStore`: the `data_keys` table of a `SqlAlchemyEventStore`.

Creating keys and forgetting a subject both start by upserting the subject's anchor row
(group `*`), which locks it until their transaction ends: so on PostgreSQL a key is never
created for a subject whose forgetting commits meanwhile (the upsert waits, then reads
the anchor's latest version), and a forgetting waits for key creations in flight.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from eventcore._persistence._data_keys import ALL_GROUPS, DataKey
from eventcore._sqlalchemy._errors import fetch, store_error
from eventcore._sqlalchemy._schema import EventStoreTables

__all__ = ["SqlAlchemyDataKeyStore"]

Begin = Callable[[], AbstractAsyncContextManager[AsyncConnection]]


class SqlAlchemyDataKeyStore:
    """A [`DataKeyStore`][eventcore.DataKeyStore] in the store's `data_keys` table.

    `begin` opens a write transaction of its own (committed on success): on SQLite the
    store's, which queues behind its other writers.
    """

    def __init__(self, engine: AsyncEngine, tables: EventStoreTables, begin: Begin) -> None:
        self._engine = engine
        self._t = t = tables.data_keys
        self._begin = begin
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
        self._columns = (
            t.c.subject_id,
            t.c.key_group,
            t.c.key_id,
            t.c.kek_id,
            t.c.wrapped_key,
            t.c.created_at,
            t.c.forgotten_at,
            t.c.forgotten_by,
            t.c.reason,
        )

    async def find(self, pairs: Collection[tuple[str, str]], conn: Any = None) -> list[DataKey]:
        """The rows of the `(subject, group)` pairs, and the anchors of their subjects."""
        wanted = sorted(set(pairs) | {(subject, ALL_GROUPS) for subject, _ in pairs})
        t = self._t
        query = select(*self._columns).where(tuple_(t.c.subject_id, t.c.key_group).in_(wanted))
        return await self._select(query, "cannot read data keys", conn)

    async def by_ids(self, key_ids: Collection[uuid.UUID]) -> list[DataKey]:
        """The rows of the given key ids (destroyed ones too)."""
        query = select(*self._columns).where(self._t.c.key_id.in_(list(key_ids)))
        return await self._select(query, "cannot read data keys")

    async def create(self, keys: Sequence[DataKey], conn: Any = None) -> list[DataKey]:
        """Store `keys` unless their pair has a row or their subject is forgotten."""
        t = self._t
        now = datetime.now(UTC)
        subjects = sorted({key.subject_id for key in keys})  # one lock order: no deadlocks
        anchors = self._insert(t).values(
            [{"subject_id": s, "key_group": ALL_GROUPS, "created_at": now} for s in subjects]
        )
        lock = anchors.on_conflict_do_update(
            index_elements=[t.c.subject_id, t.c.key_group],
            set_={"subject_id": anchors.excluded.subject_id},
        ).returning(t.c.subject_id, t.c.forgotten_at)
        async with self._within(conn, "cannot create data keys") as c:
            forgotten = {row[0] for row in (await c.execute(lock)).all() if row[1] is not None}
            rows = [
                {
                    "subject_id": key.subject_id,
                    "key_group": key.group,
                    "key_id": key.key_id,
                    "kek_id": key.kek_id,
                    "wrapped_key": key.wrapped,
                    "created_at": key.created_at,
                }
                for key in sorted(keys, key=lambda k: (k.subject_id, k.group))
                if key.subject_id not in forgotten
            ]
            if rows:
                await c.execute(self._insert(t).values(rows).on_conflict_do_nothing())
            return await self.find([(k.subject_id, k.group) for k in keys], c)

    async def forget(
        self,
        subject_id: str,
        group: str | None,
        at: datetime,
        actor: str,
        reason: str,
        conn: Any = None,
    ) -> list[DataKey] | None:
        """Destroy the subject's keys (of `group`, or all) and record who, when and why."""
        t = self._t
        stamp = {"forgotten_at": at, "forgotten_by": actor, "reason": reason}
        target = ALL_GROUPS if group is None else group
        async with self._within(conn, "cannot forget a data subject") as c:
            if group is not None:  # lock the anchor, as key creation does
                anchor = self._insert(t).values(
                    subject_id=subject_id, key_group=ALL_GROUPS, created_at=at
                )
                lock = anchor.on_conflict_do_update(
                    index_elements=[t.c.subject_id, t.c.key_group],
                    set_={"subject_id": anchor.excluded.subject_id},
                ).returning(t.c.forgotten_at)
                if (await c.execute(lock)).scalar_one() is not None:
                    return None
            new = self._insert(t).values(
                subject_id=subject_id, key_group=target, created_at=at, **stamp
            )
            record = new.on_conflict_do_update(
                index_elements=[t.c.subject_id, t.c.key_group],
                set_={name: getattr(new.excluded, name) for name in stamp},
                where=t.c.forgotten_at.is_(None),
            ).returning(t.c.subject_id)
            if (await c.execute(record)).first() is None:
                return None
            destroy = (
                update(t)
                .where(
                    t.c.subject_id == subject_id,
                    t.c.key_group != ALL_GROUPS,
                    t.c.wrapped_key.is_not(None),
                )
                .values(wrapped_key=None, kek_id=None, **stamp)
                .returning(*self._columns)
            )
            if group is not None:
                destroy = destroy.where(t.c.key_group == group)
            return [_key(row) for row in (await c.execute(destroy)).all()]

    async def subject(self, subject_id: str) -> list[DataKey]:
        """Every row of the subject, its anchor first."""
        query = select(*self._columns).where(self._t.c.subject_id == subject_id)
        rows = await self._select(query, "cannot read data keys")
        return sorted(rows, key=lambda row: (row.group != ALL_GROUPS, row.group))

    async def to_rewrap(self, current_kek: str, limit: int) -> list[DataKey]:
        """Up to `limit` keys wrapped by another KEK than `current_kek`."""
        t = self._t
        query = (
            select(*self._columns)
            .where(t.c.wrapped_key.is_not(None), t.c.kek_id != current_kek)
            .order_by(t.c.subject_id, t.c.key_group)
            .limit(limit)
        )
        return await self._select(query, "cannot read data keys")

    async def rewrap(self, key: DataKey, kek_id: str, wrapped: bytes) -> bool:
        """Replace `key`'s wrapping unless it was destroyed or re-wrapped meanwhile."""
        t = self._t
        statement = (
            update(t)
            .where(
                t.c.key_id == key.key_id,
                t.c.kek_id == key.kek_id,
                t.c.wrapped_key.is_not(None),
            )
            .values(kek_id=kek_id, wrapped_key=wrapped)
        )
        async with self._within(None, "cannot re-wrap a data key") as c:
            return bool((await c.execute(statement)).rowcount)

    async def _select(self, query: Any, what: str, conn: Any = None) -> list[DataKey]:
        if conn is None:  # a read on a connection of its own: retried once if it was lost
            return [_key(row) for row in await fetch(self._engine, what, query)]
        try:
            rows = (await conn.execute(query)).all()
        except SQLAlchemyError as error:
            raise store_error(what, error) from error
        return [_key(row) for row in rows]

    @asynccontextmanager
    async def _within(self, conn: AsyncConnection | None, what: str) -> AsyncIterator[Any]:
        try:
            if conn is not None:
                yield conn
            else:
                async with self._begin() as own:
                    yield own
        except SQLAlchemyError as error:
            raise store_error(what, error) from error


def _key(row: Row[Any]) -> DataKey:
    subject, group, key_id, kek_id, wrapped, created, forgotten, by, reason = tuple(row)
    return DataKey(
        subject,
        group,
        None if key_id is None else uuid.UUID(bytes=key_id.bytes),
        kek_id,
        None if wrapped is None else bytes(wrapped),
        _utc(created),
        None if forgotten is None else _utc(forgotten),
        by,
        reason,
    )


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
