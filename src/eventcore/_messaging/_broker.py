"""What the outbox relay and the consumers need of a broker: `Publisher` and `MessageSource`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable

from eventcore._messaging._message import Message

__all__ = ["Delivery", "MessageSource", "PublishResult", "Publisher"]

PublishResult = dict[uuid.UUID, str]
"""What `Publisher.publish` returns: the messages that failed, each with why. Empty: all
were confirmed by the broker."""


@runtime_checkable
class Publisher(Protocol):
    """Sends messages to a broker and waits until the broker has taken them.

    `publish` sends the messages in the order given (so one partition key's messages
    keep their order) and returns only once the broker confirmed each one (RabbitMQ
    publisher confirms, JetStream acks) or it failed. It returns the failures; a
    failure that concerns the whole batch (the connection is down) may instead be
    raised as [`PublishError`][eventcore.PublishError]. Either way, a message that is
    not confirmed is retried later: the broker may see it twice, and consumers'
    inboxes absorb the duplicate.
    """

    async def publish(self, messages: Sequence[Message]) -> PublishResult:
        """Publish `messages` in order; return the ones that failed (see the class)."""
        ...

    async def close(self) -> None:
        """Close the connection (a later `publish` opens a new one)."""
        ...


class Delivery(Protocol):
    """A message received from a broker, to be settled once handled."""

    @property
    def message(self) -> Message:
        """The message received."""
        ...

    @property
    def redelivered(self) -> bool:
        """Whether the broker says it delivered this message before."""
        ...

    async def ack(self) -> None:
        """Done with it: the broker forgets it."""
        ...

    async def retry(self, delay: float) -> None:
        """Not handled now: have the broker deliver it again (after about `delay` seconds
        where the broker supports a delay)."""
        ...


@runtime_checkable
class MessageSource(Protocol):
    """Receives messages from a broker: a queue (RabbitMQ) or a durable consumer (NATS)."""

    def deliveries(self) -> AbstractAsyncContextManager[AsyncIterator[Delivery]]:
        """Subscribe while the block is open; iterate the deliveries as they arrive.

        Deliveries not yet settled when the block exits are redelivered by the broker
        (to this or another consumer).
        """
        ...

    async def close(self) -> None:
        """Close the connection."""
        ...
