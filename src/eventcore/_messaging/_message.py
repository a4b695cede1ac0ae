"""`Message`: the envelope an integration event travels in, from outbox to inbox."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = ["CONTENT_TYPE", "Message", "MessageHeaders"]

CONTENT_TYPE = "application/json"


class MessageHeaders:
    """The header names eventcore writes on every message (lower case, broker-neutral).

    Brokers carry them as their own properties where they have one (RabbitMQ's
    `message_id`, `type`, `content_type`, `correlation_id`; NATS's `Nats-Msg-Id`)
    and as plain headers otherwise.
    """

    MESSAGE_ID = "message-id"
    TYPE = "message-type"
    SCHEMA_VERSION = "schema-version"
    CONTENT_TYPE = "content-type"
    PARTITION_KEY = "partition-key"
    CORRELATION_ID = "correlation-id"
    CAUSATION_ID = "causation-id"
    CREATED_AT = "created-at"


@dataclass(frozen=True, slots=True)
class Message:
    """One integration event on its way between bounded contexts.

    - `message_id`: unique and stable across retries: brokers de-duplicate on it
      (NATS `Nats-Msg-Id`) and consumers' inboxes record it.
    - `topic`: where it goes (a RabbitMQ routing key, a NATS subject).
    - `key`: the partition key; messages with one key are published in order.
    - `type` and `schema_version`: the integration event's contract name and version.
    - `payload`: the event as JSON bytes (`content-type: application/json`).
    - `headers`: everything else, as strings: correlation and causation ids, and any
      headers of your own.
    """

    message_id: uuid.UUID
    topic: str
    key: str
    type: str
    schema_version: int
    payload: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def correlation_id(self) -> str | None:
        """The correlation id header, if any."""
        return self.headers.get(MessageHeaders.CORRELATION_ID)

    @property
    def causation_id(self) -> str | None:
        """The causation id header (the id of what caused this message), if any."""
        return self.headers.get(MessageHeaders.CAUSATION_ID)

    def all_headers(self) -> dict[str, str]:
        """`headers` plus the envelope's own fields, as broker headers."""
        return {
            **self.headers,
            MessageHeaders.MESSAGE_ID: str(self.message_id),
            MessageHeaders.TYPE: self.type,
            MessageHeaders.SCHEMA_VERSION: str(self.schema_version),
            MessageHeaders.CONTENT_TYPE: CONTENT_TYPE,
            MessageHeaders.PARTITION_KEY: self.key,
            MessageHeaders.CREATED_AT: self.created_at.isoformat(),
        }

    @classmethod
    def from_headers(cls, topic: str, payload: bytes, headers: Mapping[str, str]) -> Message:
        """Rebuild a message from what `all_headers` wrote (raises `ValueError` if a
        required header is missing or malformed)."""
        envelope = {
            MessageHeaders.MESSAGE_ID,
            MessageHeaders.TYPE,
            MessageHeaders.SCHEMA_VERSION,
            MessageHeaders.CONTENT_TYPE,
            MessageHeaders.PARTITION_KEY,
            MessageHeaders.CREATED_AT,
        }
        missing = [h for h in (MessageHeaders.MESSAGE_ID, MessageHeaders.TYPE) if h not in headers]
        if missing:
            raise ValueError(f"message on {topic!r} lacks the header(s) {', '.join(missing)}")
        created = headers.get(MessageHeaders.CREATED_AT)
        return cls(
            message_id=uuid.UUID(headers[MessageHeaders.MESSAGE_ID]),
            topic=topic,
            key=headers.get(MessageHeaders.PARTITION_KEY, ""),
            type=headers[MessageHeaders.TYPE],
            schema_version=int(headers.get(MessageHeaders.SCHEMA_VERSION, "1")),
            payload=payload,
            headers={k: v for k, v in headers.items() if k not in envelope},
            created_at=datetime.fromisoformat(created) if created else datetime.now(UTC),
        )
