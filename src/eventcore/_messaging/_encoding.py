"""Integration events to messages and back."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from pydantic import ValidationError

from eventcore._domain._integration import IntegrationEvent
from eventcore._domain._metadata import RecordedEvent, new_event_id
from eventcore._exceptions import MessageDecodeError
from eventcore._messaging._message import Message, MessageHeaders

__all__ = ["decode_event", "message_for", "message_id_for"]


def message_id_for(recorded: RecordedEvent, event: IntegrationEvent, index: int) -> uuid.UUID:
    """A stable id for the `index`-th integration event translated from `recorded`.

    Derived from the domain event's id, so translating the same event again (a retried
    commit, a re-publication from the log) yields the same message id: brokers and
    inboxes then see a duplicate, not a new message.
    """
    return uuid.uuid5(recorded.event_id, f"{event.integration_type_name}/{index}")


def message_for(
    event: IntegrationEvent,
    *,
    key: str,
    message_id: uuid.UUID | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Message:
    """The message that carries `event` to its topic, with partition key `key`."""
    extra = dict(headers or {})
    if correlation_id is not None:
        extra[MessageHeaders.CORRELATION_ID] = correlation_id
    if causation_id is not None:
        extra[MessageHeaders.CAUSATION_ID] = causation_id
    cls = type(event)
    return Message(
        message_id=message_id or new_event_id(),  # time-ordered (UUIDv7), as event ids
        topic=cls.integration_topic,
        key=key,
        type=cls.integration_type_name,
        schema_version=cls.integration_schema_version,
        payload=event.__pydantic_serializer__.to_json(event),
        headers=extra,
    )


def decode_event(message: Message, cls: type[IntegrationEvent]) -> IntegrationEvent:
    """Validate `message`'s payload as `cls`; `MessageDecodeError` names what is wrong."""
    if message.schema_version > cls.integration_schema_version:
        raise MessageDecodeError(
            f"message {message.message_id} is {message.type!r} version "
            f"{message.schema_version}, newer than {cls.__name__} (version "
            f"{cls.integration_schema_version}): upgrade this consumer"
        )
    try:
        return cls.model_validate_json(message.payload)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in error.errors()[:5]
        )
        raise MessageDecodeError(
            f"message {message.message_id} ({message.type!r}) does not fit "
            f"{cls.__name__}: {problems}"
        ) from error
