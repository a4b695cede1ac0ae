"""How the contexts reach each other: a broker, chosen by URL.

Shared plumbing, not a context. Registration's relay publishes through
`broker.publisher()`; a consuming context names its queue and topics in a `Subscription`
and reads `broker.source(subscription)`. The URL picks the broker:

- none (or `memory://`): an `InMemoryBroker`, for the demo in one process;
- `amqp://...`: RabbitMQ (`pip install 'eventcore-university[rabbitmq]'`);
- `nats://...`: NATS JetStream (`pip install 'eventcore-university[nats]'`).

`namespace` keeps one deployment's broker objects apart from another's: it names the
RabbitMQ exchange and prefixes the queues; it names the NATS stream and prefixes its
subjects.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from eventcore import (
    InMemoryBroker,
    InMemoryQueue,
    Message,
    MessageSource,
    Publisher,
    PublishResult,
)

__all__ = [
    "DEFAULT_NAMESPACE",
    "Broker",
    "MemoryBroker",
    "NatsBroker",
    "RabbitMqBroker",
    "Subscription",
    "broker_for",
    "safe_url",
]

DEFAULT_NAMESPACE = "university"


@dataclass(frozen=True)
class Subscription:
    """A consumer's queue (`name`, unique per consuming context) and the topics it reads."""

    name: str
    topics: tuple[str, ...]


class Broker(Protocol):
    """What the contexts need of a broker (see the module docstring)."""

    def publisher(self, topics: Sequence[str]) -> Publisher:
        """A new publisher to `topics` (the caller closes it)."""
        ...

    def source(self, subscription: Subscription) -> MessageSource:
        """A new source of `subscription`'s messages (the caller closes it)."""
        ...

    async def subscribe(self, subscription: Subscription) -> None:
        """Make sure messages for `subscription` are kept from now on, before it consumes."""
        ...

    def describe(self) -> str:
        """The broker, for people (passwords masked)."""
        ...


def broker_for(url: str | None, *, namespace: str = DEFAULT_NAMESPACE) -> Broker:
    """The broker at `url` (see the module docstring); `ValueError` for other schemes."""
    scheme = urlsplit(url).scheme if url else "memory"
    if scheme == "memory":
        return MemoryBroker()
    if scheme in ("amqp", "amqps"):
        return RabbitMqBroker(url or "", namespace=namespace)
    if scheme in ("nats", "tls"):
        return NatsBroker(url or "", namespace=namespace)
    raise ValueError(f"unsupported broker URL {url!r}: use amqp://, nats:// or memory://")


def safe_url(url: str) -> str:
    """`url` with its password masked."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class MemoryBroker:
    """An `InMemoryBroker`: publisher and queues in this process only."""

    def __init__(self) -> None:
        self.broker = InMemoryBroker()
        self._queues: dict[str, InMemoryQueue] = {}

    def publisher(self, topics: Sequence[str]) -> Publisher:
        """The in-memory broker itself."""
        return self.broker

    def source(self, subscription: Subscription) -> MessageSource:
        """The subscription's queue (made on first use)."""
        queue = self._queues.get(subscription.name)
        if queue is None:
            queue = self.broker.queue(subscription.name, subscription.topics)
            self._queues[subscription.name] = queue
        return queue

    async def subscribe(self, subscription: Subscription) -> None:
        """Make the subscription's queue now, so that it keeps what is published next."""
        self.source(subscription)

    def describe(self) -> str:
        """`an in-memory broker`."""
        return "an in-memory broker"


class RabbitMqBroker:
    """RabbitMQ: a topic exchange named `namespace`, and a durable queue per subscription
    (`<namespace>.<subscription name>`) bound to the subscription's topics."""

    def __init__(self, url: str, *, namespace: str = DEFAULT_NAMESPACE) -> None:
        self.url = url
        self.exchange = namespace

    def queue_name(self, subscription: Subscription) -> str:
        """The subscription's RabbitMQ queue."""
        return f"{self.exchange}.{subscription.name}"

    def publisher(self, topics: Sequence[str]) -> Publisher:
        """A `RabbitMqPublisher` to the exchange (publisher confirms, mandatory)."""
        from eventcore.rabbitmq import RabbitMqPublisher

        return RabbitMqPublisher(self.url, exchange=self.exchange)

    def source(self, subscription: Subscription) -> MessageSource:
        """A `RabbitMqSource` on the subscription's queue (declared if missing)."""
        from eventcore.rabbitmq import RabbitMqSource

        return RabbitMqSource(
            self.url,
            queue=self.queue_name(subscription),
            bindings=subscription.topics,
            exchange=self.exchange,
        )

    async def subscribe(self, subscription: Subscription) -> None:
        """Declare the subscription's queue and bindings (a no-op if they exist)."""
        from eventcore.rabbitmq import declare_queue

        await declare_queue(
            self.url,
            self.queue_name(subscription),
            bindings=subscription.topics,
            exchange=self.exchange,
        )

    def describe(self) -> str:
        """The URL and exchange."""
        return f"RabbitMQ at {safe_url(self.url)} (exchange {self.exchange!r})"


class NatsBroker:
    """NATS JetStream: a stream named for `namespace` captures the published topics, as
    subjects prefixed `<namespace>.` (subjects are global to a NATS account: the prefix
    keeps deployments apart); each subscription reads it through a durable consumer."""

    def __init__(self, url: str, *, namespace: str = DEFAULT_NAMESPACE) -> None:
        self.url = url
        self.prefix = namespace
        self.stream = _nats_name(namespace)

    def subjects(self, topics: Sequence[str]) -> list[str]:
        """The NATS subjects of `topics`."""
        return [f"{self.prefix}.{topic}" for topic in topics]

    def publisher(self, topics: Sequence[str]) -> Publisher:
        """A `NatsPublisher` that makes sure the stream captures `topics`."""
        from eventcore.nats import NatsPublisher

        publisher = NatsPublisher(self.url, stream=self.stream, subjects=self.subjects(topics))
        return _PrefixedPublisher(publisher, self.prefix)

    def source(self, subscription: Subscription) -> MessageSource:
        """A `NatsSource`: the subscription's durable consumer on the stream."""
        from eventcore.nats import NatsSource

        return NatsSource(
            self.url,
            stream=self.stream,
            subjects=self.subjects(subscription.topics),
            durable=_nats_name(subscription.name),
        )

    async def subscribe(self, subscription: Subscription) -> None:
        """Make sure the stream exists and captures the subscription's topics."""
        import nats

        from eventcore.nats import ensure_stream

        client = await nats.connect(self.url, connect_timeout=5, allow_reconnect=False)
        try:
            await ensure_stream(client.jetstream(), self.stream, self.subjects(subscription.topics))
        finally:
            await client.close()

    def describe(self) -> str:
        """The URL and stream."""
        return f"NATS at {safe_url(self.url)} (stream {self.stream!r})"


class _PrefixedPublisher:
    """Publishes each message to `<prefix>.<topic>`."""

    def __init__(self, publisher: Publisher, prefix: str) -> None:
        self._publisher = publisher
        self._prefix = prefix

    async def publish(self, messages: Sequence[Message]) -> PublishResult:
        prefix = self._prefix
        return await self._publisher.publish(
            [replace(m, topic=f"{prefix}.{m.topic}") for m in messages]
        )

    async def close(self) -> None:
        await self._publisher.close()


def _nats_name(name: str) -> str:
    """`name` as a NATS stream or consumer name (no dots, wildcards or spaces)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)
