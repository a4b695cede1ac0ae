"""Event envelopes and metadata: ids, correlation and causation, actor and tenant."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from eventcore._domain._events import DomainEvent

__all__ = [
    "EventMetadata",
    "LogPosition",
    "MessageContext",
    "NewEvent",
    "RecordedEvent",
    "caused_by",
    "current_context",
    "message_context",
    "new_event_id",
]


# Bound once: new_event_id runs for every recorded event.
_time_ns = time.time_ns
_random_bits = random.getrandbits
_new_object = object.__new__
_set_attribute = object.__setattr__
_UUID = uuid.UUID
_UNKNOWN_SAFETY = uuid.SafeUUID.unknown


def new_event_id() -> uuid.UUID:
    """Return a new time-ordered UUID (version 7).

    Time-ordered ids keep the event-id index append-mostly, which keeps inserts fast.
    The 74 random bits come from `random`, which Python reseeds in a forked child, so
    processes never share a sequence.
    """
    rand = _random_bits(74)
    value = (
        (_time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | (rand >> 62) << 64
        | 0b10 << 62
        | rand & 0x3FFF_FFFF_FFFF_FFFF
    )
    new: uuid.UUID = _new_object(_UUID)  # skips UUID.__init__'s argument parsing
    _set_attribute(new, "int", value)
    _set_attribute(new, "is_safe", _UNKNOWN_SAFETY)
    return new


@dataclass(frozen=True, slots=True)
class EventMetadata:
    """What is stored about an event besides its payload.

    `correlation_id` ties together everything one request or conversation caused;
    `causation_id` names the message (command or event) that directly caused this event.
    `extra` holds free-form JSON-compatible values.
    """

    correlation_id: str | None = None
    causation_id: str | None = None
    actor: str | None = None
    tenant: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the metadata as a JSON-compatible dict, leaving out empty fields."""
        out: dict[str, Any] = {}
        if self.correlation_id is not None:
            out["correlation_id"] = self.correlation_id
        if self.causation_id is not None:
            out["causation_id"] = self.causation_id
        if self.actor is not None:
            out["actor"] = self.actor
        if self.tenant is not None:
            out["tenant"] = self.tenant
        if self.extra:
            out["extra"] = dict(self.extra)
        return out

    @classmethod
    def from_json(cls, raw: str) -> EventMetadata:
        """Build metadata from its stored JSON text (empty text means no metadata)."""
        if not raw or raw == "{}":
            return _EMPTY_METADATA
        return cls.from_dict(json.loads(raw))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> EventMetadata:
        """Build metadata from the dict `to_dict` made (unknown keys go to `extra`)."""
        if not data:
            return _EMPTY_METADATA
        known = {"correlation_id", "causation_id", "actor", "tenant", "extra"}
        extra = dict(data.get("extra") or {})
        extra.update({k: v for k, v in data.items() if k not in known})
        return cls(
            correlation_id=data.get("correlation_id"),
            causation_id=data.get("causation_id"),
            actor=data.get("actor"),
            tenant=data.get("tenant"),
            extra=extra,
        )


_EMPTY_METADATA = EventMetadata()
EMPTY_METADATA = _EMPTY_METADATA
"""The shared instance for "no metadata" (compare with `is` for a fast check)."""


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be appended: the payload, its id and its metadata.

    The id is fixed when the event is recorded, so retrying the same append is
    idempotent: the store recognises the ids and does not write them twice.
    """

    event: DomainEvent
    event_id: uuid.UUID = field(default_factory=new_event_id)
    metadata: EventMetadata = _EMPTY_METADATA

    @classmethod
    def of(cls, event: DomainEvent) -> NewEvent:
        """Wrap `event` with a new id and the metadata of the current message context."""
        return cls(event, new_event_id(), current_context().metadata())


class LogPosition(NamedTuple):
    """A place in the global log, in commit order: what a subscriber checkpoints.

    On PostgreSQL, events are ordered by the id of the transaction that wrote them, then
    by position; both are needed because transactions commit in another order than they
    draw positions. Stores that commit one writer at a time (SQLite, in-memory) use
    `transaction_id = 0`. Compare positions with `<` and `>`; `LogPosition()` is before
    everything.
    """

    transaction_id: int = 0
    global_position: int = 0


class RecordedEvent:
    """An event as stored: payload, identity, position in its stream and in the global log.

    Read-only by convention. `metadata` is decoded on first access, so loading an
    aggregate (which never looks at it) does not pay for it.
    """

    __slots__ = (
        "_metadata",
        "event",
        "event_id",
        "event_type",
        "global_position",
        "recorded_at",
        "schema_version",
        "stream_id",
        "stream_type",
        "transaction_id",
        "version",
    )

    def __init__(
        self,
        event: DomainEvent,
        event_id: uuid.UUID,
        stream_id: str,
        stream_type: str,
        version: int,
        global_position: int,
        recorded_at: datetime,
        event_type: str,
        schema_version: int,
        metadata: EventMetadata | str = "",
        transaction_id: int = 0,
    ) -> None:
        self.event = event
        self.event_id = event_id
        self.stream_id = stream_id
        self.stream_type = stream_type
        self.version = version
        """Position in the stream, starting at 1."""
        self.global_position = global_position
        """Position in the store's global log: increasing, but with gaps."""
        self.recorded_at = recorded_at
        self.event_type = event_type
        self.schema_version = schema_version
        """The schema version the event was stored with (before any upcasting)."""
        self._metadata = metadata
        self.transaction_id = transaction_id
        """The writing transaction's id where the store has one (PostgreSQL), else 0."""

    @property
    def log_position(self) -> LogPosition:
        """Where the event stands in the global log's commit order (a checkpoint)."""
        return LogPosition(self.transaction_id, self.global_position)

    @property
    def metadata(self) -> EventMetadata:
        """The event's metadata (correlation, causation, actor, tenant, extra)."""
        metadata = self._metadata
        if isinstance(metadata, str):
            metadata = EventMetadata.from_json(metadata)
            self._metadata = metadata
        return metadata

    @property
    def correlation_id(self) -> str | None:
        """Shortcut for `metadata.correlation_id`."""
        return self.metadata.correlation_id

    @property
    def causation_id(self) -> str | None:
        """Shortcut for `metadata.causation_id`."""
        return self.metadata.causation_id

    def _key(self) -> tuple[object, ...]:
        return (
            self.event,
            self.event_id,
            self.stream_id,
            self.stream_type,
            self.version,
            self.global_position,
            self.recorded_at,
            self.event_type,
            self.schema_version,
            self.metadata,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RecordedEvent):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self.event_id)

    def __repr__(self) -> str:
        return (
            f"RecordedEvent({self.event!r}, stream_id={self.stream_id!r}, "
            f"version={self.version}, global_position={self.global_position}, "
            f"event_id={self.event_id})"
        )


@dataclass(frozen=True, slots=True)
class MessageContext:
    """The message being handled: its id and the correlation, actor and tenant to propagate."""

    message_id: str | None = None
    correlation_id: str | None = None
    actor: str | None = None
    tenant: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def metadata(self) -> EventMetadata:
        """Metadata for an event caused by this message."""
        if self is _NO_CONTEXT:
            return _EMPTY_METADATA
        return EventMetadata(
            correlation_id=self.correlation_id or self.message_id,
            causation_id=self.message_id,
            actor=self.actor,
            tenant=self.tenant,
            extra=self.extra,
        )


_NO_CONTEXT = MessageContext()
_context: ContextVar[MessageContext] = ContextVar("eventcore_message_context", default=_NO_CONTEXT)


def current_context() -> MessageContext:
    """Return the message context in force (an empty one outside any `message_context`)."""
    return _context.get()


@contextmanager
def message_context(
    message_id: str | uuid.UUID | None = None,
    *,
    correlation_id: str | uuid.UUID | None = None,
    actor: str | None = None,
    tenant: str | None = None,
    **extra: Any,
) -> Iterator[MessageContext]:
    """Handle a message (usually a command): events recorded inside get its metadata.

    Each event recorded in the block gets `causation_id = message_id` and
    `correlation_id = correlation_id or message_id`; the correlation id, actor and tenant
    are inherited from an enclosing context when not given. Works across `await`s (it is
    a `ContextVar`).

    ```python
    with message_context(command.id, actor="registrar"):
        section.register("s-1")
    ```
    """
    outer = _context.get()
    ctx = MessageContext(
        message_id=_str(message_id),
        correlation_id=_str(correlation_id) or outer.correlation_id or outer.message_id,
        actor=actor if actor is not None else outer.actor,
        tenant=tenant if tenant is not None else outer.tenant,
        extra={**outer.extra, **extra},
    )
    token = _context.set(ctx)
    try:
        yield ctx
    finally:
        _context.reset(token)


@contextmanager
def caused_by(event: RecordedEvent) -> Iterator[MessageContext]:
    """Handle a recorded event: what it causes shares its correlation id.

    Inside the block, new events get `causation_id = str(event.event_id)` and the
    correlation id, actor and tenant of `event`.
    """
    meta = event.metadata
    with message_context(
        event.event_id,
        correlation_id=meta.correlation_id or str(event.event_id),
        actor=meta.actor,
        tenant=meta.tenant,
    ) as ctx:
        yield ctx


def _str(value: str | uuid.UUID | None) -> str | None:
    return None if value is None else str(value)
