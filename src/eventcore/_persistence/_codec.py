"""Turning events into stored rows and back, and checking input before anything is written."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from eventcore._domain._events import EventRegistry
from eventcore._domain._metadata import (
    EMPTY_METADATA,
    EventMetadata,
    LogPosition,
    NewEvent,
    RecordedEvent,
)
from eventcore._exceptions import InvalidEventError, InvalidStreamIdError, PayloadTooLargeError
from eventcore._persistence._store import ExpectedVersion, StreamAppend

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "MAX_STREAM_ID_LENGTH",
    "EncodedEvent",
    "PreparedAppend",
    "check_log_read",
    "check_read_range",
    "encode_appends",
    "utc_or_none",
    "validate_stream_id",
]

MAX_STREAM_ID_LENGTH = 255
DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
_NUL = "\\u0000"  # how JSON encoders write the NUL character
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")  # not preceded by an escaped backslash


class EncodedEvent(NamedTuple):
    """One event ready to be written: everything a backend stores, already serialised."""

    event_id: uuid.UUID
    event_type: str
    schema_version: int
    data: str
    metadata: str


def validate_stream_id(stream_id: object) -> str:
    """Return `stream_id` if it is a usable stream id, else raise `InvalidStreamIdError`."""
    if not isinstance(stream_id, str):
        raise InvalidStreamIdError(stream_id, f"must be a str, not {type(stream_id).__name__}")
    if not stream_id or stream_id.isspace():
        raise InvalidStreamIdError(stream_id, "must not be empty or blank")
    if len(stream_id) > MAX_STREAM_ID_LENGTH:
        raise InvalidStreamIdError(stream_id, f"longer than {MAX_STREAM_ID_LENGTH} characters")
    if not stream_id.isprintable():
        raise InvalidStreamIdError(stream_id, "contains control or non-printable characters")
    return stream_id


def validate_expected_version(stream_id: str, expected: object) -> int | ExpectedVersion:
    """Return `expected` if it is a valid expected version, else raise `InvalidEventError`."""
    if isinstance(expected, ExpectedVersion):
        return expected
    if isinstance(expected, int) and not isinstance(expected, bool) and expected >= 0:
        return expected
    raise InvalidEventError(
        f"stream {stream_id!r}: expected_version must be an int >= 0 or an ExpectedVersion, "
        f"not {expected!r}"
    )


@dataclass(frozen=True, slots=True)
class PreparedAppend:
    """One stream's append, validated and serialised, ready for a backend to write."""

    stream_id: str
    expected_version: int | ExpectedVersion
    stream_type: str
    events: list[EncodedEvent]


def encode_appends(appends: Sequence[StreamAppend], max_payload_bytes: int) -> list[PreparedAppend]:
    """Validate and serialise a (multi-stream) append; raise before anything is written."""
    prepared = [encode_append(append, max_payload_bytes) for append in appends]
    check_distinct(prepared)
    return prepared


def encode_append(append: StreamAppend, max_payload_bytes: int) -> PreparedAppend:
    """Validate one stream's append and serialise its events."""
    stream_id = validate_stream_id(append.stream_id)
    expected = validate_expected_version(stream_id, append.expected_version)
    if not isinstance(append.stream_type, str):
        raise InvalidEventError(f"stream {stream_id!r}: stream_type must be a str")
    encoded = [_encode(stream_id, new, max_payload_bytes) for new in append.events]
    return PreparedAppend(stream_id, expected, append.stream_type, encoded)


def _encode(stream_id: str, new: object, max_payload_bytes: int) -> EncodedEvent:
    if not isinstance(new, NewEvent):
        raise InvalidEventError(
            f"stream {stream_id!r}: expected NewEvent instances, got {type(new).__name__} "
            "(wrap domain events with NewEvent.of(event))"
        )
    event = new.event
    cls = type(event)
    event_type = cls.event_type_name
    data = event.model_dump_json()
    size = len(data) if len(data) * 4 <= max_payload_bytes else len(data.encode())
    if size > max_payload_bytes:
        raise PayloadTooLargeError(stream_id, event_type, size, max_payload_bytes)
    metadata = new.metadata
    encoded_metadata = "{}" if metadata is EMPTY_METADATA else _encode_metadata(metadata)
    if (_NUL in data or _NUL in encoded_metadata) and (
        _contains_nul(data) or _contains_nul(encoded_metadata)
    ):
        raise InvalidEventError(
            f"event {event_type!r} for stream {stream_id!r} contains a NUL character "
            "(\\u0000), which PostgreSQL cannot store in JSON; strip it first"
        )
    return EncodedEvent(
        new.event_id,
        event_type,
        cls.event_schema_version,
        data,
        encoded_metadata,
    )


def _encode_metadata(metadata: EventMetadata) -> str:
    as_dict = metadata.to_dict()
    return json.dumps(as_dict) if as_dict else "{}"


def _contains_nul(text: str) -> bool:
    return _NUL in text and _ESCAPED_NUL.search(text) is not None


def decode_row(
    registry: EventRegistry,
    *,
    event_id: uuid.UUID,
    stream_id: str,
    stream_type: str,
    version: int,
    global_position: int,
    recorded_at: datetime,
    event_type: str,
    schema_version: int,
    data: str | bytes,
    metadata: str | None,
) -> RecordedEvent:
    """Build a `RecordedEvent` from a stored row, upcasting the payload if needed."""
    event = registry.decode(event_type, schema_version, data, stream_id, version)
    return RecordedEvent(
        event,
        event_id,
        stream_id,
        stream_type,
        version,
        global_position,
        recorded_at,
        event_type,
        schema_version,
        metadata or "",
    )


def check_distinct(appends: Sequence[PreparedAppend]) -> None:
    """Raise `InvalidEventError` if a stream, or an event id, appears twice in one append."""
    streams: set[str] = set()
    ids: set[uuid.UUID] = set()
    for append in appends:
        stream_id, events = append.stream_id, append.events
        if stream_id in streams:
            raise InvalidEventError(f"stream {stream_id!r} appears twice in one append")
        streams.add(stream_id)
        for event in events:
            if event.event_id in ids:
                raise InvalidEventError(
                    f"stream {stream_id!r}: event id {event.event_id} is used twice in one append"
                )
            ids.add(event.event_id)


def check_read_range(from_version: int, to_version: int | None, limit: int | None) -> None:
    """Raise `InvalidEventError` for negative versions or limits."""
    if from_version < 0 or (to_version is not None and to_version < 0):
        raise InvalidEventError("from_version and to_version must be >= 0")
    if limit is not None and limit < 0:
        raise InvalidEventError(f"limit must be >= 0, not {limit}")


def utc_or_none(moment: datetime | None) -> datetime | None:
    """Return `moment` in UTC; a naive datetime is refused (its zone would be a guess)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise InvalidEventError(f"as_of must be timezone-aware, got naive {moment.isoformat()}")
    return moment.astimezone(UTC)


def check_log_read(after: object, limit: int) -> None:
    """Raise `InvalidEventError` for a log read with a bad position or limit."""
    if not isinstance(after, LogPosition) or not all(isinstance(v, int) and v >= 0 for v in after):
        raise InvalidEventError(f"after must be a LogPosition of non-negative ints, not {after!r}")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise InvalidEventError(f"limit must be an int >= 1, not {limit!r}")
