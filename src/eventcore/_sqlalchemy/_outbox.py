"""`SqlAlchemyOutbox`: the outbox tables, written in the unit of work, read by relays."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    and_,
    any_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from eventcore._messaging._message import Message
from eventcore._messaging._outbox import (
    OutboxEntry,
    OutboxStatus,
    Settlement,
    lane_of,
)
from eventcore._persistence._payload_cipher import PayloadCipher
from eventcore._sqlalchemy._errors import fetch, store_error
from eventcore._sqlalchemy._outbox_lanes import OutboxLanes
from eventcore._sqlalchemy._schema import EventStoreTables
from eventcore._sqlalchemy._sealed_messages import open_entries, seal_messages
from eventcore._sqlalchemy._transaction import transaction

__all__ = ["SqlAlchemyOutbox", "in_order"]


class SqlAlchemyOutbox:
    """The [`Outbox`][eventcore.Outbox] of a
    [`SqlAlchemyEventStore`][eventcore.SqlAlchemyEventStore], in its database.

    Get it from [`store.outbox`][eventcore.SqlAlchemyEventStore.outbox]. On PostgreSQL
    relays claim lanes and messages with `FOR UPDATE SKIP LOCKED`, so several relays run
    at once without waiting for each other.
    """

    def __init__(
        self, engine: AsyncEngine, tables: EventStoreTables, cipher: PayloadCipher | None = None
    ) -> None:
        self._engine = engine
        self._cipher = cipher or PayloadCipher(None)  # seals personal data at rest
        self._t = t = tables.outbox
        self._lane_leases = OutboxLanes(engine, tables)
        self._columns = (
            t.c.position,
            t.c.message_id,
            t.c.topic,
            t.c.partition_key,
            t.c.message_type,
            t.c.schema_version,
            t.c.payload,
            t.c.headers,
            t.c.created_at,
            t.c.attempts,
            t.c.last_error,
            t.c.sent_at,
            t.c.dead_at,
        )
        self._postgres = engine.dialect.name == "postgresql"
        self._candidates, self._queued = self._claim_statements()
        positions = self._among(t.c.position, "positions")
        self._mark_claimed = (
            update(t)
            .where(positions)
            .values(claimed_by=bindparam("me"), claimed_until=bindparam("until"))
            .returning(*self._columns)
        )
        self._mark_sent = (
            update(t)
            .where(positions)
            .values(sent_at=bindparam("now"), claimed_by=None, claimed_until=None)
        )

    async def write(
        self, conn: AsyncConnection, messages: Sequence[Message], key_conn: Any = None
    ) -> None:
        """Insert `messages` in the caller's transaction (the unit of work's).

        Personal data in their payloads is sealed; new data keys are written on
        `key_conn` (`None`: in a transaction of their own).
        """
        if not messages:
            return
        messages = await seal_messages(self._cipher, messages, key_conn)
        now = datetime.now(UTC)
        rows = [
            {
                "message_id": m.message_id,
                "topic": m.topic,
                "partition_key": m.key,
                "lane": lane_of(m.key),
                "message_type": m.type,
                "schema_version": m.schema_version,
                "payload": m.payload,
                "headers": dict(m.headers),
                "created_at": m.created_at,
                "available_at": now,
            }
            for m in messages
        ]
        await self._run(conn, insert(self._t), "cannot write to the outbox", rows)

    async def claim_lanes(self, relay_id: str, lease: timedelta) -> list[int]:
        """Register `relay_id` as alive and return the lanes it owns now (see `Outbox`)."""
        return await self._lane_leases.claim(relay_id, lease)

    async def release_lanes(self, relay_id: str) -> None:
        """Give up `relay_id`'s lanes and registration (at shutdown)."""
        await self._lane_leases.release(relay_id)

    async def claim(
        self,
        relay_id: str,
        lanes: Collection[int],
        limit: int,
        visibility: timedelta,
        in_flight: Collection[int] = (),
    ) -> list[OutboxEntry]:
        """Claim up to `limit` publishable messages of `lanes`, oldest first (see `Outbox`).

        Three short statements in one transaction: lock the oldest due candidates
        (`SKIP LOCKED`), list the pending messages of their keys up to the last
        candidate, and mark as claimed each key's candidates up to its first pending
        message that is not a candidate (in backoff, or claimed elsewhere). The
        positions `in_flight` (claimed by this relay, being published) are neither
        claimed again nor in the way of the later messages of their keys.
        """
        if not lanes:
            return []
        now = datetime.now(UTC)
        flying = list(in_flight)
        async with self._begin("cannot claim outbox messages") as conn:
            params = {
                "me": relay_id,
                "now": now,
                "lanes": list(lanes),
                "limit": limit,
                "in_flight": flying,
            }
            candidates = (await conn.execute(self._candidates, params)).all()
            if not candidates:
                return []
            keys = sorted({key for _, key in candidates})
            last = candidates[-1][0]
            queue = await conn.execute(self._queued, {"keys": keys, "last": last})
            chosen = in_order({p for p, _ in candidates}, queue.all(), set(flying))
            if not chosen:
                return []
            params = {"positions": chosen, "me": relay_id, "until": now + visibility}
            rows = (await conn.execute(self._mark_claimed, params)).all()
        entries = sorted((_entry(row) for row in rows), key=lambda e: e.position)
        return await self.opened(entries)

    async def opened(self, entries: list[OutboxEntry]) -> list[OutboxEntry]:
        """`entries` with their personal data opened for publishing (replacements for
        forgotten subjects)."""
        if self._cipher.keys is None:
            return entries
        return await open_entries(self._cipher, entries)

    async def settle(self, relay_id: str, settlement: Settlement) -> None:
        """Record which claimed messages were sent and which failed (see `Outbox`)."""
        t = self._t
        now = datetime.now(UTC)
        async with self._begin("cannot settle outbox messages") as conn:
            if settlement.sent:
                sent = {"positions": list(settlement.sent), "now": now}
                await conn.execute(self._mark_sent, sent)
            if settlement.failed:
                await conn.execute(
                    update(t)
                    .where(t.c.position == bindparam("p"))
                    .values(
                        attempts=t.c.attempts + 1,
                        last_error=bindparam("error"),
                        available_at=bindparam("retry_at"),
                        dead_at=bindparam("dead_at"),
                        claimed_by=None,
                        claimed_until=None,
                    ),
                    [
                        {
                            "p": position,
                            "error": error[:2000],
                            "retry_at": retry_at or now,
                            "dead_at": None if retry_at else now,
                        }
                        for position, error, retry_at in settlement.failed
                    ],
                )

    async def delete_sent(self, before: datetime, limit: int = 10_000) -> int:
        """Delete up to `limit` messages sent before `before`; return how many."""
        t = self._t
        doomed = select(t.c.position).where(t.c.sent_at < before).order_by(t.c.sent_at).limit(limit)
        statement = t.delete().where(t.c.position.in_(doomed.scalar_subquery()))
        async with self._begin("cannot delete sent outbox messages") as conn:
            return (await conn.execute(statement)).rowcount

    async def status(self) -> OutboxStatus:
        """The backlog figures (see `OutboxStatus`)."""
        t = self._t
        pending = and_(t.c.sent_at.is_(None), t.c.dead_at.is_(None))
        query = select(
            func.count().filter(pending),
            func.count().filter(and_(pending, t.c.attempts > 0)),
            func.count().filter(t.c.dead_at.is_not(None)),
            func.count().filter(t.c.sent_at.is_not(None)),
            func.min(case((pending, t.c.created_at))),
        )
        row = (await fetch(self._engine, "cannot read the outbox status", query))[0]
        oldest = _utc(row[4])
        age = None if oldest is None else max(datetime.now(UTC) - oldest, timedelta())
        return OutboxStatus(row[0], row[1], row[2], row[3], age)

    async def lanes(self) -> dict[int, tuple[str, datetime]]:
        """Who owns each lane: `{lane: (relay_id, lease_until)}` for the lanes with an owner.

        A lease in the past has run out: the owner stalled or died, and the next relay
        to renew its lanes takes the lane over. Lanes missing here have no owner.
        """
        return await self._lane_leases.owners()

    async def dead_letters(self, limit: int = 100) -> list[OutboxEntry]:
        """The messages given up on, oldest first."""
        t = self._t
        query = (
            select(*self._columns)
            .where(t.c.dead_at.is_not(None))
            .order_by(t.c.position)
            .limit(limit)
        )
        rows = await fetch(self._engine, "cannot read the outbox's dead letters", query)
        return await self.opened([_entry(row) for row in rows])

    async def redrive(self, message_ids: Collection[uuid.UUID] | None = None) -> int:
        """Make dead messages (all, or those of `message_ids`) pending again."""
        t = self._t
        statement = (
            update(t)
            .where(t.c.dead_at.is_not(None))
            .values(dead_at=None, attempts=0, available_at=datetime.now(UTC))
        )
        if message_ids is not None:
            statement = statement.where(t.c.message_id.in_(list(message_ids)))
        async with self._begin("cannot re-drive outbox messages") as conn:
            return (await conn.execute(statement)).rowcount

    async def purge(self, *, dead: bool = False) -> int:
        """Delete every sent message now (and the dead ones too with `dead=True`)."""
        t = self._t
        done = t.c.sent_at.is_not(None)
        condition = or_(done, t.c.dead_at.is_not(None)) if dead else done
        async with self._begin("cannot purge the outbox") as conn:
            return (await conn.execute(t.delete().where(condition))).rowcount

    # -- helpers ------------------------------------------------------------------------

    def _claim_statements(self) -> tuple[Any, Any]:
        t = self._t
        now: Any = bindparam("now")
        pending = (t.c.sent_at.is_(None), t.c.dead_at.is_(None))
        candidates = (
            select(t.c.position, t.c.partition_key)
            .where(
                *pending,
                self._among(t.c.lane, "lanes"),
                ~self._among(t.c.position, "in_flight"),
                t.c.available_at <= now,
                or_(
                    t.c.claimed_until.is_(None),
                    t.c.claimed_until < now,
                    t.c.claimed_by == bindparam("me"),
                ),
            )
            .order_by(t.c.position)
            .limit(bindparam("limit"))
            .with_for_update(skip_locked=True)
        )
        queued = (
            select(t.c.position, t.c.partition_key)
            .where(
                *pending,
                self._among(t.c.partition_key, "keys"),
                t.c.position <= bindparam("last"),
            )
            .order_by(t.c.position)
        )
        return candidates, queued

    def _among(self, column: Any, name: str) -> ColumnElement[bool]:
        """`column IN (:name)`. On PostgreSQL one array parameter (`= ANY`): an expanding
        IN would render hundreds of parameters into the statement at every execution."""
        if self._postgres:
            return column == any_(bindparam(name, type_=ARRAY(column.type)))  # type: ignore[no-any-return]
        return column.in_(bindparam(name, expanding=True))  # type: ignore[no-any-return]

    def _begin(self, what: str) -> AbstractAsyncContextManager[AsyncConnection]:
        return transaction(self._engine, what)

    async def _run(
        self, conn: AsyncConnection, statement: Any, what: str, params: Any = None
    ) -> None:
        try:
            await conn.execute(statement, params)
        except SQLAlchemyError as error:
            raise store_error(what, error) from error


def in_order(candidates: set[int], queued: Sequence[Any], passable: set[int]) -> list[int]:
    """Each key's candidates up to the key's first queued message that is neither one
    nor `passable` (published already by this relay, in an earlier batch)."""
    blocked: set[str] = set()
    chosen = []
    for position, key in queued:  # by position
        if key in blocked or position in passable:
            continue
        if position in candidates:
            chosen.append(position)
        else:
            blocked.add(key)
    return chosen


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)  # SQLite gives naive datetimes back


def _entry(row: Any) -> OutboxEntry:
    (position, message_id, topic, key, type_, version, payload, headers) = row[:8]
    created_at, attempts, last_error, sent_at, dead_at = row[8:]
    message = Message(
        message_id=uuid.UUID(bytes=message_id.bytes),  # asyncpg has a UUID class of its own
        topic=topic,
        key=key,
        type=type_,
        schema_version=version,
        payload=bytes(payload),
        headers=headers or {},
        created_at=_utc(created_at) or datetime.now(UTC),
    )
    return OutboxEntry(position, message, attempts, last_error, _utc(sent_at), _utc(dead_at))
