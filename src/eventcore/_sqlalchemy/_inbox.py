"""`SqlAlchemyInbox`: which messages each consumer has handled, and which it failed on."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from eventcore._messaging._message import Message
from eventcore._persistence._payload_cipher import PayloadCipher
from eventcore._sqlalchemy._errors import fetch, is_database_error, retried, store_error
from eventcore._sqlalchemy._outbox import _utc
from eventcore._sqlalchemy._schema import EventStoreTables
from eventcore._sqlalchemy._sealed_messages import open_messages, seal_messages

__all__ = ["InboxDeadLetter", "SqlAlchemyInbox"]


@dataclass(frozen=True, slots=True)
class InboxDeadLetter:
    """A message a consumer gave up on: the message, how often it failed, and why."""

    consumer: str
    message: Message
    attempts: int
    error: str
    dead_at: datetime


class SqlAlchemyInbox:
    """The inbox of a [`SqlAlchemyEventStore`][eventcore.SqlAlchemyEventStore]'s consumers.

    A consumer records each message id in the transaction that handles it: a message
    delivered again finds its id and has no second effect.
    """

    def __init__(
        self, engine: AsyncEngine, tables: EventStoreTables, cipher: PayloadCipher | None = None
    ) -> None:
        self._engine = engine
        # Dead letters keep personal data sealed (or, without keys, shredded).
        self._cipher = cipher or PayloadCipher(None)
        self._inbox = tables.inbox
        self._failures = tables.inbox_failures
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert

    async def record(self, conn: AsyncConnection, consumer: str, message_id: uuid.UUID) -> bool:
        """Record `message_id` as handled by `consumer` in the caller's transaction.

        Returns `False` when it was recorded before (a duplicate: skip it). A concurrent
        transaction recording the same id makes this one wait, then return `False`.
        """
        values = {"consumer": consumer, "message_id": message_id, "handled_at": _now()}
        statement = self._insert(self._inbox).values(values).on_conflict_do_nothing()
        try:
            return bool((await conn.execute(statement)).rowcount)
        except SQLAlchemyError as error:
            raise store_error("cannot write to the inbox", error) from error

    async def handled(self, consumer: str, message_id: uuid.UUID) -> bool:
        """Whether `consumer` has handled `message_id`."""
        t = self._inbox
        query = select(t.c.message_id).where(t.c.consumer == consumer, t.c.message_id == message_id)
        return bool(await fetch(self._engine, "cannot read the inbox", query))

    async def delete_handled(self, before: datetime, consumer: str | None = None) -> int:
        """Forget the messages handled before `before` (of `consumer`, if given).

        The inbox only needs a message id for as long as the broker might deliver it
        again: keep rows well past the broker's redelivery horizon (NATS's duplicate
        window, a RabbitMQ queue's longest backlog), e.g. a week.
        """
        t = self._inbox
        statement = t.delete().where(t.c.handled_at < before)
        if consumer is not None:
            statement = statement.where(t.c.consumer == consumer)

        async def delete() -> int:  # idempotent: retried on a lost connection
            async with self._engine.begin() as conn:
                return (await conn.execute(statement)).rowcount

        return await retried("cannot clean up the inbox", delete)

    async def record_failure(
        self, consumer: str, message: Message, error: str, max_attempts: int
    ) -> tuple[int, bool]:
        """Count a failed attempt at `message`; return the attempts so far and whether
        it is now dead (`max_attempts` reached; a copy is kept for inspection).

        One upsert, so two workers failing on one message at once both count.
        """
        t = self._failures
        now = _now()
        [message] = await seal_messages(self._cipher, [message], shred=True)
        row = {**_columns(consumer, message), "attempts": 1, "error": error[:2000]}
        insert_row = self._insert(t).values(failed_at=now, **row)
        statement = insert_row.on_conflict_do_update(
            index_elements=[t.c.consumer, t.c.message_id],
            set_={"attempts": t.c.attempts + 1, "error": row["error"], "failed_at": now},
        ).returning(t.c.attempts)
        key = (t.c.consumer == consumer, t.c.message_id == message.message_id)
        try:
            async with self._engine.begin() as conn:
                attempts = int((await conn.execute(statement)).scalar_one())
                if attempts >= max_attempts:
                    await conn.execute(
                        update(t).where(*key, t.c.dead_at.is_(None)).values(dead_at=now)
                    )
        except Exception as failure:
            if not is_database_error(failure):
                raise
            raise store_error("cannot record a consumer failure", failure) from failure
        return attempts, attempts >= max_attempts

    async def is_dead(self, conn: AsyncConnection, consumer: str, message_id: uuid.UUID) -> bool:
        """Whether `consumer` gave up on `message_id` (a late redelivery is then skipped)."""
        t = self._failures
        query = select(t.c.dead_at).where(t.c.consumer == consumer, t.c.message_id == message_id)
        try:
            row = (await conn.execute(query)).first()
        except SQLAlchemyError as error:
            raise store_error("cannot read the inbox's dead letters", error) from error
        return row is not None and row[0] is not None

    async def clear_failures(
        self, conn: AsyncConnection, consumer: str, message_id: uuid.UUID
    ) -> None:
        """Forget earlier failures of `message_id` (it was handled), in the caller's transaction."""
        t = self._failures
        statement = t.delete().where(t.c.consumer == consumer, t.c.message_id == message_id)
        try:
            await conn.execute(statement)
        except SQLAlchemyError as error:
            raise store_error("cannot clear a consumer's failures", error) from error

    async def dead_letters(self, consumer: str | None = None) -> list[InboxDeadLetter]:
        """The messages consumers gave up on (those of `consumer`, if given), oldest first."""
        t = self._failures
        query = select(t).where(t.c.dead_at.is_not(None)).order_by(t.c.dead_at)
        if consumer is not None:
            query = query.where(t.c.consumer == consumer)
        found = await fetch(self._engine, "cannot read the inbox's dead letters", query)
        rows = [row._mapping for row in found]
        messages = [
            Message(
                message_id=uuid.UUID(bytes=row["message_id"].bytes),
                topic=row["topic"],
                key=row["partition_key"],
                type=row["message_type"],
                schema_version=row["schema_version"],
                payload=bytes(row["payload"]),
                headers=row["headers"] or {},
            )
            for row in rows
        ]
        if self._cipher.keys is not None:
            messages = await open_messages(self._cipher, messages)
        return [
            InboxDeadLetter(
                row["consumer"],
                message,
                row["attempts"],
                row["error"],
                _utc(row["dead_at"]) or _now(),
            )
            for row, message in zip(rows, messages, strict=True)
        ]

    async def discard(self, consumer: str, message_ids: Collection[uuid.UUID]) -> int:
        """Delete `consumer`'s dead letters of `message_ids`; return how many."""
        t = self._failures
        statement = t.delete().where(
            t.c.consumer == consumer,
            t.c.message_id.in_(list(message_ids)),
            t.c.dead_at.is_not(None),  # not the attempt counts of messages still retried
        )

        async def discard() -> int:  # idempotent: retried on a lost connection
            async with self._engine.begin() as conn:
                return (await conn.execute(statement)).rowcount

        return await retried("cannot discard inbox dead letters", discard)


def _now() -> datetime:
    return datetime.now(UTC)


def _columns(consumer: str, message: Message) -> dict[str, object]:
    return {
        "consumer": consumer,
        "message_id": message.message_id,
        "topic": message.topic,
        "partition_key": message.key,
        "message_type": message.type,
        "schema_version": message.schema_version,
        "payload": message.payload,
        "headers": dict(message.headers),
    }
