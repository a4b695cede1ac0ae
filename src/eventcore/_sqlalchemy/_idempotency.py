"""`SqlAlchemyIdempotencyStore`: idempotency keys in the `idempotency_keys` table.

A key is claimed inside the command's own transaction. On PostgreSQL the claim takes a
transaction-level advisory lock on the key first, without waiting: a second request
with a key whose first request is still running is told so at once (rather than
blocking on the first one's row), and the lock ends with the transaction. On SQLite a
unit of work holds the database's only write transaction, so no other transaction can
hold the key meanwhile.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, select, text, tuple_
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from eventcore._exceptions import IdempotencyKeyInFlightError, UnitOfWorkError
from eventcore._persistence._idempotency import IdempotencyRecord, check_key, replay_of
from eventcore._persistence._store import EventStoreSession
from eventcore._sqlalchemy._errors import fetch, store_error
from eventcore._sqlalchemy._outbox import _utc
from eventcore._sqlalchemy._schema import EventStoreTables

__all__ = ["SqlAlchemyIdempotencyStore"]

_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:key)")


class SqlAlchemyIdempotencyStore:
    """An [`IdempotencyStore`][eventcore.IdempotencyStore] in the event store's database.

    A completed record commits with the command's events; one whose command rolled
    back was never there.
    """

    def __init__(self, engine: AsyncEngine, tables: EventStoreTables) -> None:
        self._engine = engine
        self._tables = tables
        self._table = tables.idempotency
        self._postgres = engine.dialect.name == "postgresql"

    async def claim(
        self, session: EventStoreSession, scope: str, key: str, fingerprint: str
    ) -> IdempotencyRecord | None:
        """Claim `key` in `session`'s transaction (see `IdempotencyStore.claim`)."""
        check_key(key)
        conn = _connection(session)
        t = self._table
        where = (t.c.scope == scope, t.c.key == key)
        try:
            if self._postgres:
                locked = await conn.execute(_TRY_LOCK, {"key": self._lock_key(scope, key)})
                if not locked.scalar_one():
                    raise IdempotencyKeyInFlightError(key)
            row = (await conn.execute(select(t).where(*where))).first()
            record = None if row is None else _record(row)
            if record is not None and record.expires_at <= datetime.now(UTC):
                await conn.execute(t.delete().where(*where))
                record = None
        except SQLAlchemyError as error:
            raise store_error("cannot claim an idempotency key", error) from error
        return replay_of(record, key, fingerprint)

    async def complete(self, session: EventStoreSession, record: IdempotencyRecord) -> None:
        """Insert `record` in `session`'s transaction."""
        values = {
            "scope": record.scope,
            "key": record.key,
            "fingerprint": record.fingerprint,
            "status": record.status,
            "headers": [list(pair) for pair in record.headers],
            "body": record.body,
            "created_at": record.created_at,
            "expires_at": record.expires_at,
        }
        try:
            await _connection(session).execute(self._table.insert().values(values))
        except SQLAlchemyError as error:
            raise store_error("cannot store an idempotency key's result", error) from error

    async def find(self, scope: str, key: str) -> IdempotencyRecord | None:
        """The stored record of `key` in `scope`, unless it has expired."""
        t = self._table
        query = select(t).where(t.c.scope == scope, t.c.key == key)
        rows = await fetch(self._engine, "cannot read idempotency keys", query)
        record = _record(rows[0]) if rows else None
        if record is None or record.expires_at <= datetime.now(UTC):
            return None
        return record

    async def delete_expired(self, *, now: datetime | None = None, limit: int = 10_000) -> int:
        """Delete up to `limit` records that expired before `now` (default: now)."""
        t = self._table
        moment = now or datetime.now(UTC)
        expired = select(t.c.scope, t.c.key).where(t.c.expires_at <= moment).limit(limit)
        statement = t.delete().where(tuple_(t.c.scope, t.c.key).in_(expired))
        try:
            async with self._engine.begin() as conn:
                return (await conn.execute(statement)).rowcount
        except SQLAlchemyError as error:
            raise store_error("cannot delete expired idempotency keys", error) from error

    def _lock_key(self, scope: str, key: str) -> int:
        identity = (
            f"eventcore.idempotency\0{self._tables.schema or 'public'}\0"
            f"{self._tables.prefix}\0{scope}\0{key}"
        )
        digest = hashlib.blake2b(identity.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big", signed=True)


def _connection(session: EventStoreSession) -> AsyncConnection:
    connection: Any = getattr(session, "connection", None)
    if not isinstance(connection, AsyncConnection):
        raise UnitOfWorkError(f"{type(session).__name__} is not a SqlAlchemyEventStore session")
    return connection


def _record(row: Row[Any]) -> IdempotencyRecord:
    m = row._mapping
    created, expires = _utc(m["created_at"]), _utc(m["expires_at"])
    assert created is not None
    assert expires is not None
    return IdempotencyRecord(
        m["scope"],
        m["key"],
        m["fingerprint"],
        m["status"],
        tuple((str(name), str(value)) for name, value in m["headers"]),
        bytes(m["body"]),
        created,
        expires,
    )
