"""The brokers of the relay scenarios, and the raw client loops they are compared with.

`open_broker` sets up, for one scenario, a destination of its own that takes messages
cheaply: RabbitMQ, a topic exchange with one durable queue bound to it (`#`, at most
`_MAX_MESSAGES` messages, the oldest dropped); NATS, a JetStream stream capturing the
scenario's subject (at most `_MAX_MESSAGES` messages, the oldest discarded). Both are
deleted afterwards. `reset` empties them (untimed, between rounds).

The raw loops publish with the same client library, confirmation mode and pipelining
as eventcore's publishers: a batch is sent without waiting, then every confirm (ack)
of the batch is awaited before the next batch. They never touch the database.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import aio_pika
import nats
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from eventcore import Message, MessageHeaders, Publisher
from eventcore.nats import NatsPublisher
from eventcore.rabbitmq import RabbitMqPublisher

__all__ = ["BROKERS", "Broker", "BrokerUnavailable", "RawLoop", "Skipped"]

RABBITMQ_URL_ENV = "EVENTCORE_BENCH_RABBITMQ_URL"
NATS_URL_ENV = "EVENTCORE_BENCH_NATS_URL"
_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
_NATS_URL = "nats://127.0.0.1:4222"
_MAX_MESSAGES = 50_000
_CONNECT_TIMEOUT = 5.0

RawLoop = Callable[[], Awaitable[None]]


class BrokerUnavailable(Exception):
    """The broker cannot be reached: the scenario is skipped."""


@dataclass(frozen=True)
class Skipped:
    """A scenario that could not run (its broker is unreachable)."""

    scenario: str
    reason: str

    def cells(self) -> tuple[str, str, str, str]:
        """Table cells (see `Outcome.cells`)."""
        return ("skipped", "-", "-", "")

    def notes(self) -> list[str]:
        """Why it was skipped."""
        return [self.reason]

    def as_json(self) -> dict[str, object]:
        """The JSON object of this result."""
        return {"scenario": self.scenario, "skipped": self.reason, "met": None}


class Broker(Protocol):
    """One scenario's destination on a broker."""

    @property
    def topic(self) -> str:
        """Where the scenario's messages go (a routing key, a subject)."""
        ...

    def publisher(self) -> Publisher:
        """A new eventcore publisher to the destination."""
        ...

    def raw_loop(self, messages: Sequence[Message], batch: int) -> RawLoop:
        """The raw client's publishing of `messages`, `batch` at a time (to await once)."""
        ...

    async def reset(self) -> None:
        """Drop every message the destination holds."""
        ...


class _RabbitMq:
    def __init__(self, url: str, name: str, channel: AbstractChannel) -> None:
        self.url, self.name, self.topic = url, name, f"bench.relay.{name}"
        self._channel = channel
        self._exchange: AbstractExchange | None = None
        self._queue: AbstractQueue | None = None

    async def declare(self) -> None:
        self._exchange = await self._channel.declare_exchange(self.name, "topic", durable=True)
        arguments: dict[str, Any] = {"x-max-length": _MAX_MESSAGES}
        self._queue = await self._channel.declare_queue(
            self.name, durable=True, arguments=arguments
        )
        await self._queue.bind(self._exchange, "#")

    async def delete(self) -> None:
        await self._channel.queue_delete(self.name)
        await self._channel.exchange_delete(self.name)

    def publisher(self) -> Publisher:
        return RabbitMqPublisher(self.url, exchange=self.name)

    def raw_loop(self, messages: Sequence[Message], batch: int) -> RawLoop:
        # What the application holds: the payloads, headers and properties, routing keys.
        items = [
            (m.payload, m.all_headers(), str(m.message_id), m.type, m.correlation_id,
             m.created_at, m.topic)
            for m in messages
        ]  # fmt: skip
        exchange = self._exchange
        assert exchange is not None
        persistent = aio_pika.DeliveryMode.PERSISTENT

        async def work() -> None:
            for start in range(0, len(items), batch):
                await asyncio.gather(
                    *(
                        exchange.publish(
                            aio_pika.Message(
                                payload, headers=headers,  # type: ignore[arg-type]
                                content_type="application/json", delivery_mode=persistent,
                                message_id=message_id, type=type_,
                                correlation_id=correlation_id, timestamp=created_at,
                            ),
                            routing_key,
                            mandatory=True,
                        )
                        for payload, headers, message_id, type_, correlation_id, created_at,
                        routing_key in items[start : start + batch]
                    )
                )  # fmt: skip

        return work

    async def reset(self) -> None:
        assert self._queue is not None
        await self._queue.purge()


class _Nats:
    def __init__(self, url: str, name: str, client: Client) -> None:
        self.url, self.name, self.topic = url, name.upper(), f"bench.relay.{name}"
        self._js: JetStreamContext = client.jetstream()

    async def declare(self) -> None:
        config = StreamConfig(
            name=self.name, subjects=[self.topic], max_msgs=_MAX_MESSAGES, duplicate_window=120
        )
        await self._js.add_stream(config)

    async def delete(self) -> None:
        await self._js.delete_stream(self.name)

    def publisher(self) -> Publisher:
        return NatsPublisher(self.url)

    def raw_loop(self, messages: Sequence[Message], batch: int) -> RawLoop:
        items = []
        for m in messages:
            headers = m.all_headers()
            headers["Nats-Msg-Id"] = headers[MessageHeaders.MESSAGE_ID]
            items.append((m.topic, m.payload, headers))
        publish_async = self._js.publish_async

        async def work() -> None:
            for start in range(0, len(items), batch):
                acks = [
                    await publish_async(subject, payload, headers=headers)
                    for subject, payload, headers in items[start : start + batch]
                ]
                await asyncio.gather(*acks)

        return work

    async def reset(self) -> None:
        await self._js.purge_stream(self.name)


async def _reachable(name: str, url: str, env: str, port: int) -> None:
    """Raise `BrokerUnavailable` at once if nothing listens at `url` (clients retry)."""
    parts = urlsplit(url)
    try:
        async with asyncio.timeout(_CONNECT_TIMEOUT):
            _, writer = await asyncio.open_connection(parts.hostname, parts.port or port)
    except (OSError, TimeoutError) as error:
        raise BrokerUnavailable(f"{name} at {url} ({env}): {error!r}") from error
    writer.close()
    await writer.wait_closed()


@asynccontextmanager
async def _rabbitmq() -> AsyncIterator[Broker]:
    url = os.environ.get(RABBITMQ_URL_ENV, _RABBITMQ_URL)
    await _reachable("RabbitMQ", url, RABBITMQ_URL_ENV, 5672)
    connection = await aio_pika.connect(url, timeout=_CONNECT_TIMEOUT)
    try:
        # The raw side's channel: publisher confirms, returned messages raise (as eventcore's).
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        broker = _RabbitMq(url, f"bench_relay_{uuid.uuid4().hex[:8]}", channel)
        await broker.declare()
        try:
            yield broker
        finally:
            await broker.delete()
    finally:
        await connection.close()


@asynccontextmanager
async def _nats() -> AsyncIterator[Broker]:
    url = os.environ.get(NATS_URL_ENV, _NATS_URL)
    await _reachable("NATS", url, NATS_URL_ENV, 4222)
    client = await nats.connect(url, connect_timeout=5, allow_reconnect=False)
    try:
        broker = _Nats(url, f"bench_relay_{uuid.uuid4().hex[:8]}", client)
        await broker.declare()
        try:
            yield broker
        finally:
            await broker.delete()
    finally:
        await client.close()


BROKERS: dict[str, Callable[[], AbstractAsyncContextManager[Broker]]] = {
    "rabbitmq": _rabbitmq,
    "nats": _nats,
}
"""How to open a scenario's destination on each broker (raises `BrokerUnavailable`)."""
