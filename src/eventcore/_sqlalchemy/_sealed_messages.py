"""Personal data in messages at rest: the outbox's rows and the inbox's dead letters.

A message's payload is an integration event; if its class marks personal data, those
fields are sealed while the message waits in a table (with the key of its data subject
in *this* store), and opened when it leaves: when a relay claims it for publishing, or
a dead letter is read back. A subject forgotten before then gets its replacements.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from eventcore._domain._personal import message_schema
from eventcore._messaging._message import Message
from eventcore._messaging._outbox import OutboxEntry
from eventcore._persistence._payload_cipher import PayloadCipher, Sealable, has_sealed_values

__all__ = ["open_entries", "open_messages", "seal_messages"]


async def seal_messages(
    cipher: PayloadCipher, messages: Sequence[Message], conn: Any = None, *, shred: bool = False
) -> list[Message]:
    """`messages` with the personal fields of their payloads sealed."""
    items: list[Sealable] = []
    places: list[int] = []
    for index, message in enumerate(messages):
        schema = message_schema(message.type, message.schema_version)
        if schema is not None:
            what = f"message {message.message_id} ({message.type!r})"
            items.append((schema, message.message_id, message.payload, what))
            places.append(index)
    if not items:
        return list(messages)
    sealed = await cipher.seal(items, conn, shred=shred)
    out = list(messages)
    for index, payload in zip(places, sealed, strict=True):
        out[index] = replace(out[index], payload=payload.encode())
    return out


async def open_messages(cipher: PayloadCipher, messages: Sequence[Message]) -> list[Message]:
    """`messages` with their sealed values opened (or replaced, for forgotten subjects)."""
    if not any(has_sealed_values(m.payload) for m in messages):
        return list(messages)
    opened = await cipher.reveal([(m.message_id, m.payload) for m in messages])
    return [
        m if p is m.payload else replace(m, payload=p.encode() if isinstance(p, str) else p)
        for m, p in zip(messages, opened, strict=True)
    ]


async def open_entries(cipher: PayloadCipher, entries: list[OutboxEntry]) -> list[OutboxEntry]:
    """Outbox entries with their messages opened."""
    if not any(has_sealed_values(e.message.payload) for e in entries):
        return entries
    messages = await open_messages(cipher, [e.message for e in entries])
    return [replace(e, message=m) for e, m in zip(entries, messages, strict=True)]
