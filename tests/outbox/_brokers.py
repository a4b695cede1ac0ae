"""One test's own broker names (RabbitMQ exchange and queue, or NATS stream), with the
publishers and sources on them, and the arguments `_relay_process.py` needs."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import nats
import nats.js.errors

from eventcore import MessageSource, Publisher
from eventcore.nats import NatsPublisher, NatsSource, ensure_stream
from eventcore.rabbitmq import (
    RabbitMqPublisher,
    RabbitMqSource,
    declare_queue,
    delete_exchange,
    delete_queue,
)

BROKERS = ("rabbitmq", "nats")

# Short timeouts: an outage must show within a second or two, not after the defaults.
_PUBLISH_TIMEOUT = 3.0
_CONNECT_TIMEOUT = 1.0
# JetStream redelivers a message whose ack was lost after this long (default 30 s).
_ACK_WAIT = 2.0


@dataclass(frozen=True)
class BrokerNames:
    """The topic, and the queue (RabbitMQ) or stream (NATS), of one test."""

    kind: str
    url: str
    suffix: str

    @property
    def prefix(self) -> str:
        """The first part of every topic of this test."""
        return f"ectest_outbox.{self.suffix}"

    @property
    def topic(self) -> str:
        """Where this test's integration events are published."""
        return f"{self.prefix}.sequenced"

    @property
    def exchange(self) -> str:
        """The RabbitMQ exchange."""
        return f"ec_outbox_x_{self.suffix}"

    @property
    def queue(self) -> str:
        """The RabbitMQ queue."""
        return f"ec_outbox_q_{self.suffix}"

    @property
    def stream(self) -> str:
        """The JetStream stream."""
        return f"EC_OUTBOX_{self.suffix}"

    @property
    def subjects(self) -> list[str]:
        """The JetStream stream's subjects."""
        return [f"{self.prefix}.>"]

    def publisher(self, url: str | None = None, **options: Any) -> Publisher:
        """A publisher to this test's exchange or stream (through `url`, if given)."""
        options.setdefault("publish_timeout", _PUBLISH_TIMEOUT)
        options.setdefault("connect_timeout", _CONNECT_TIMEOUT)
        if self.kind == "rabbitmq":
            return RabbitMqPublisher(url or self.url, exchange=self.exchange, **options)
        return NatsPublisher(url or self.url, stream=self.stream, subjects=self.subjects, **options)

    def source(self, url: str | None = None) -> MessageSource:
        """The consumer's queue, or durable consumer (through `url`, if given)."""
        if self.kind == "rabbitmq":
            return RabbitMqSource(
                url or self.url,
                queue=self.queue,
                bindings=[f"{self.prefix}.#"],
                exchange=self.exchange,
                connect_timeout=_CONNECT_TIMEOUT,
            )
        return NatsSource(
            url or self.url,
            stream=self.stream,
            subjects=self.subjects,
            durable="effects",
            ack_wait=_ACK_WAIT,
            connect_timeout=_CONNECT_TIMEOUT,
        )

    def relay_arguments(self) -> list[str]:
        """`_relay_process.py`'s command-line arguments for this broker."""
        arguments = ["--broker", self.kind, "--broker-url", self.url]
        if self.kind == "rabbitmq":
            return [*arguments, "--exchange", self.exchange]
        return [*arguments, "--stream", self.stream, "--subject", self.subjects[0]]

    async def declare(self) -> None:
        """Create the queue or stream, so messages published before the consumer
        subscribes are kept (and RabbitMQ's mandatory publishes find a queue)."""
        if self.kind == "rabbitmq":
            await declare_queue(
                self.url, self.queue, bindings=[f"{self.prefix}.#"], exchange=self.exchange
            )
            return
        client = await nats.connect(self.url, allow_reconnect=False)
        try:
            await ensure_stream(client.jetstream(), self.stream, self.subjects)
        finally:
            await client.close()

    async def delete(self) -> None:
        """Delete the queue and exchange, or the stream."""
        if self.kind == "rabbitmq":
            await delete_queue(self.url, self.queue)
            await delete_exchange(self.url, self.exchange)
            return
        client = await nats.connect(self.url, allow_reconnect=False)
        try:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await client.jetstream().delete_stream(self.stream)
        finally:
            await client.close()
