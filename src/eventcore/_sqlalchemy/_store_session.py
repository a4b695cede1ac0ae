"""`SqlAlchemySession`: a unit of work's transaction on a `SqlAlchemyEventStore`."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from eventcore._domain._metadata import LogPosition, NewEvent, RecordedEvent
from eventcore._messaging._message import Message
from eventcore._persistence._codec import (
    PreparedAppend,
    check_read_range,
    encode_appends,
    utc_or_none,
    validate_stream_id,
)
from eventcore._persistence._deadlines import encode_deadline, sealed_deadline
from eventcore._persistence._payload_cipher import PayloadCipher
from eventcore._persistence._signal import AppendSignal
from eventcore._persistence._store import AppendResult, BeforeCommit, StreamAppend
from eventcore._sqlalchemy._checkpoints import SqlAlchemyCheckpoints
from eventcore._sqlalchemy._dead_letters import SqlAlchemyDeadLetters
from eventcore._sqlalchemy._deadlines import SqlAlchemyDeadlines
from eventcore._sqlalchemy._outbox import SqlAlchemyOutbox

__all__ = ["BackendSession", "SqlAlchemySession"]


class BackendSession(Protocol):
    """What a backend's session (PostgreSQL or SQLite) offers the store's session."""

    @property
    def connection(self) -> AsyncConnection: ...

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        as_of: datetime | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]: ...

    async def commit_prepared(
        self, appends: Sequence[PreparedAppend], before_commit: BeforeCommit | None
    ) -> list[AppendResult]: ...

    async def announce(self) -> None: ...

    async def rollback(self) -> None: ...


class SqlAlchemySession:
    """A unit of work's transaction; its `connection` carries your own writes."""

    def __init__(
        self,
        inner: BackendSession,
        max_payload_bytes: int,
        checkpoints: SqlAlchemyCheckpoints,
        dead_letters: SqlAlchemyDeadLetters,
        deadlines: SqlAlchemyDeadlines,
        outbox: SqlAlchemyOutbox,
        signal: AppendSignal,
        cipher: PayloadCipher | None = None,
        *,
        sqlite: bool = False,
    ) -> None:
        self._inner = inner
        self._cipher = cipher or PayloadCipher(None)
        self._sqlite = sqlite
        self._outbox = outbox
        self._signal = signal
        self._wrote_messages = False
        self._max_payload_bytes = max_payload_bytes
        self._checkpoints = checkpoints
        self._dead_letters = dead_letters
        self._deadlines = deadlines

    async def save_checkpoint(self, name: str, position: LogPosition) -> None:
        """Record subscriber `name`'s checkpoint in this session's transaction."""
        await self._checkpoints.save(self.connection, name, position)

    async def park(
        self, projector: str, recorded: RecordedEvent, error: str, *, attempts: int = 1
    ) -> None:
        """Park `recorded` for `projector` in this session's transaction (see
        [`EventStoreSession.park`][eventcore.EventStoreSession.park])."""
        await self._dead_letters.park(self.connection, projector, recorded, error, attempts)

    async def release(self, projector: str, event_id: uuid.UUID) -> None:
        """Delete `projector`'s dead letter of `event_id` in this session's transaction."""
        await self._dead_letters.release(self.connection, projector, event_id)

    async def parked_streams(self, projector: str, stream_ids: Collection[str]) -> set[str]:
        """Which of `stream_ids` have events parked for `projector`."""
        return await self._dead_letters.parked_streams(self.connection, projector, stream_ids)

    async def schedule_deadline(
        self, stream_id: str, event: NewEvent, due_at: datetime, *, stream_type: str = ""
    ) -> None:
        """Schedule `event` for `stream_id` at `due_at`, in this session's transaction."""
        deadline = encode_deadline(stream_id, event, due_at, stream_type, self._max_payload_bytes)
        deadline = await sealed_deadline(self._cipher, deadline, event, self._key_connection)
        await self._deadlines.schedule(self.connection, deadline)

    async def cancel_deadline(self, deadline_id: uuid.UUID) -> None:
        """Delete a scheduled deadline, in this session's transaction."""
        await self._deadlines.cancel(self.connection, [deadline_id])

    async def add_messages(self, messages: Sequence[Message]) -> None:
        """Put `messages` in the outbox, in this session's transaction."""
        await self._outbox.write(self.connection, messages, self._key_connection)
        self._wrote_messages = self._wrote_messages or bool(messages)

    @property
    def connection(self) -> AsyncConnection:
        """The SQLAlchemy connection: writes made on it commit atomically with the events."""
        return self._inner.connection

    @property
    def _key_connection(self) -> AsyncConnection | None:
        """Where new data keys are written: in this transaction on SQLite (its only
        writer), else in a short transaction of their own."""
        return self.connection if self._sqlite else None

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        as_of: datetime | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        """Read a stream on the session's connection."""
        check_read_range(from_version, to_version, limit)
        return await self._inner.read_stream(
            validate_stream_id(stream_id),
            from_version=from_version,
            to_version=to_version,
            as_of=utc_or_none(as_of),
            backwards=backwards,
            limit=limit,
        )

    async def commit(
        self, appends: Sequence[StreamAppend], *, before_commit: BeforeCommit | None = None
    ) -> list[AppendResult]:
        """Append to the streams and commit with the connection's other writes, atomically.

        `before_commit` runs inside the transaction after the append (see
        `EventStoreSession.commit`).
        """
        try:
            prepared = encode_appends(appends, self._max_payload_bytes)
            prepared = await self._cipher.protect_appends(appends, prepared, self._key_connection)
        except BaseException:
            await self._inner.rollback()
            raise
        results = await self._inner.commit_prepared(prepared, before_commit)
        if self._wrote_messages and not prepared:
            await self._inner.announce()  # wake the relays (an append announces itself)
        return results

    async def rollback(self) -> None:
        """Discard everything done in the session."""
        await self._inner.rollback()
