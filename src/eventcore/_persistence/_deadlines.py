"""`Deadline`: an event to append to a stream once it falls due (process manager timeouts)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from eventcore._domain._metadata import NewEvent
from eventcore._exceptions import InvalidEventError
from eventcore._persistence._codec import EncodedEvent, PreparedAppend, encode_append
from eventcore._persistence._store import ExpectedVersion, StreamAppend

if TYPE_CHECKING:
    from eventcore._persistence._payload_cipher import PayloadCipher

__all__ = [
    "Deadline",
    "deadline_appends",
    "due_now",
    "encode_deadline",
    "sealed_deadline",
    "utc_moment",
]


@dataclass(frozen=True, slots=True)
class Deadline:
    """An event scheduled to be appended to a stream when it falls due.

    Written in a session's transaction
    ([`schedule_deadline`][eventcore.EventStoreSession.schedule_deadline]), it waits in
    the store's `deadlines` table until
    [`fire_deadlines`][eventcore.EventStore.fire_deadlines] appends its event to the
    stream, at the end of the stream, and deletes it, in one transaction.
    """

    id: uuid.UUID
    """The deadline's id, which is also the id its event gets in the log."""
    stream_id: str
    stream_type: str
    due_at: datetime
    event_type: str
    schema_version: int
    data: str
    """The event's payload, as JSON text."""
    metadata: str
    """The event's metadata, as JSON text."""
    created_at: datetime

    @property
    def encoded(self) -> EncodedEvent:
        """The event, ready to be appended."""
        return EncodedEvent(self.id, self.event_type, self.schema_version, self.data, self.metadata)


def utc_moment(moment: datetime, what: str = "due_at") -> datetime:
    """`moment` in UTC; a naive datetime is refused (its zone would be a guess)."""
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise InvalidEventError(f"{what} must be a timezone-aware datetime, not {moment!r}")
    return moment.astimezone(UTC)


def due_now(now: datetime | None, limit: int) -> datetime:
    """The moment `fire_deadlines` fires at (now, by default), once its `limit` is checked."""
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise InvalidEventError(f"limit must be an int >= 1, not {limit!r}")
    return datetime.now(UTC) if now is None else utc_moment(now, "now")


def encode_deadline(
    stream_id: str,
    event: NewEvent,
    due_at: datetime,
    stream_type: str,
    max_payload_bytes: int,
) -> Deadline:
    """Validate and serialise a deadline, as an append of its event would be."""
    append = StreamAppend(stream_id, [event], ExpectedVersion.ANY, stream_type)
    prepared = encode_append(append, max_payload_bytes)
    e = prepared.events[0]
    return Deadline(
        e.event_id,
        prepared.stream_id,
        prepared.stream_type,
        utc_moment(due_at),
        e.event_type,
        e.schema_version,
        e.data,
        e.metadata,
        datetime.now(UTC),
    )


async def sealed_deadline(
    cipher: PayloadCipher, deadline: Deadline, event: NewEvent, conn: Any = None
) -> Deadline:
    """`deadline` with its event's personal fields sealed (it waits at rest)."""
    append = StreamAppend(deadline.stream_id, [event], ExpectedVersion.ANY, deadline.stream_type)
    prepared = PreparedAppend(deadline.stream_id, ExpectedVersion.ANY, deadline.stream_type,
                              [deadline.encoded])  # fmt: skip
    [sealed] = await cipher.protect_appends([append], [prepared], conn)
    return replace(deadline, data=sealed.events[0].data)


def deadline_appends(deadlines: Sequence[Deadline]) -> list[PreparedAppend]:
    """The appends that fire `deadlines`: one per stream, events in due order, `ANY`.

    The streams go in the order of their ids, so that concurrent firings lock them in
    one order (PostgreSQL would otherwise find deadlocks).
    """
    streams: dict[str, PreparedAppend] = {}
    for deadline in sorted(deadlines, key=lambda d: (d.due_at, d.id)):
        append = streams.get(deadline.stream_id)
        if append is None:
            append = PreparedAppend(
                deadline.stream_id, ExpectedVersion.ANY, deadline.stream_type, []
            )
            streams[deadline.stream_id] = append
        append.events.append(deadline.encoded)
    return [streams[stream_id] for stream_id in sorted(streams)]
