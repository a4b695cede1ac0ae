"""`RabbitMqPublisher`: publishes messages to an exchange, with publisher confirms."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from aio_pika.exceptions import ChannelClosed
from aiormq.exceptions import DeliveryError
from aiormq.exceptions import PublishError as ReturnedError

from eventcore import BrokerConnectionError, Message, PublishError, PublishResult
from eventcore.rabbitmq._topology import (
    CONNECTION_ERRORS,
    DEFAULT_EXCHANGE,
    close_quietly,
    connect,
    declare_exchange,
    safe_url,
)

__all__ = ["RabbitMqPublisher", "to_amqp"]


def to_amqp(message: Message) -> aio_pika.Message:
    """The AMQP message for `message`: persistent, its envelope as properties and headers."""
    return aio_pika.Message(
        message.payload,
        headers=message.all_headers(),  # type: ignore[arg-type]  # dict[str, str] is fine
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(message.message_id),
        type=message.type,
        correlation_id=message.correlation_id,
        timestamp=message.created_at,
    )


class RabbitMqPublisher:
    """Publishes messages to a RabbitMQ exchange and waits for the broker's confirms.

    Each message goes to `exchange` with the routing key `message.topic`, as a
    persistent message whose AMQP properties carry its id (`message_id`), type,
    content type, correlation id and creation time (`timestamp`), and whose headers
    carry [`Message.all_headers()`][eventcore.Message.all_headers].

    `publish` sends a batch in order on one channel without waiting between messages,
    then waits for all the publisher confirms, at most `publish_timeout` seconds. It
    returns the messages that failed, each with why: RabbitMQ refused it
    (`basic.nack`, e.g. a full queue with `x-overflow: reject-publish`), it was not
    confirmed in time, or, with `mandatory=True` (the default), no queue is bound for
    its routing key (RabbitMQ returns the message rather than dropping it silently;
    declare your queues first, see [`declare_queue`][eventcore.rabbitmq.declare_queue]).
    When the connection is down or drops, it raises
    [`BrokerConnectionError`][eventcore.BrokerConnectionError] instead.

    It connects on the first `publish`, and reconnects on the next `publish` after the
    connection dropped (or within `connect_timeout` raises `BrokerConnectionError`).
    With `declare=True` it declares the durable exchange (`exchange_type`) when it
    connects.
    """

    def __init__(
        self,
        url: str,
        *,
        exchange: str = DEFAULT_EXCHANGE,
        exchange_type: str = "topic",
        declare: bool = True,
        mandatory: bool = True,
        publish_timeout: float = 10.0,
        connect_timeout: float = 5.0,
    ) -> None:
        if publish_timeout <= 0 or connect_timeout <= 0:
            raise ValueError("publish_timeout and connect_timeout must be positive")
        self._url = url
        self._exchange_name = exchange
        self._exchange_type = exchange_type
        self._declare = declare
        self._mandatory = mandatory
        self._publish_timeout = publish_timeout
        self._connect_timeout = connect_timeout
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        """Whether it holds an open connection and channel (it connects on `publish`)."""
        return not self._broken(channel=True)

    async def publish(self, messages: Sequence[Message]) -> PublishResult:
        """Publish `messages` in order; return the ones that failed, each with why."""
        if not messages:
            return {}
        exchange = await self._ready_exchange()
        publish = exchange.publish
        mandatory = self._mandatory
        # One task per message, created in order: aiormq writes each publish's frames
        # under the channel's (FIFO) lock, so the wire order is the batch's order.
        tasks = [
            asyncio.ensure_future(publish(to_amqp(m), m.topic, mandatory=mandatory))
            for m in messages
        ]
        try:
            _, pending = await asyncio.wait(tasks, timeout=self._publish_timeout)
        finally:
            for task in tasks:
                task.cancel()  # a no-op on the done ones
        if pending:
            await asyncio.wait(pending)
        return await self._outcome(messages, tasks)

    async def _outcome(
        self, messages: Sequence[Message], tasks: Sequence[asyncio.Future[Any]]
    ) -> PublishResult:
        failures: PublishResult = {}
        timed_out = dropped = False
        for message, task in zip(messages, tasks, strict=True):
            if task.cancelled():
                timed_out = True
                failures[message.message_id] = (
                    f"RabbitMQ did not confirm it within {self._publish_timeout} s"
                )
            elif (error := task.exception()) is not None:
                dropped = dropped or isinstance(error, CONNECTION_ERRORS)
                failures[message.message_id] = self._reason(message, error)
        if not failures:
            return failures
        if dropped or self._broken():
            await self._discard()
            raise BrokerConnectionError(
                f"the connection to RabbitMQ at {safe_url(self._url)} dropped while "
                f"publishing {len(messages)} message(s) ({len(failures)} unconfirmed): "
                f"{next(iter(failures.values()))}"
            )
        if timed_out or self._broken(channel=True):
            await self._discard()  # the channel is closed, or its confirms in doubt
        if timed_out and len(failures) == len(messages):  # a blocked broker (an alarm)
            raise BrokerConnectionError(
                f"RabbitMQ at {safe_url(self._url)} confirmed none of {len(messages)} "
                f"message(s) within {self._publish_timeout} s (a memory or disk alarm "
                "blocks publishers, say)"
            )
        return failures

    def _reason(self, message: Message, error: BaseException) -> str:
        if isinstance(error, ReturnedError):
            code = getattr(error.frame, "reply_text", "NO_ROUTE")
            return (
                f"no queue is bound to exchange {self._exchange_name!r} for routing key "
                f"{message.topic!r}: RabbitMQ returned it ({code})"
            )
        if isinstance(error, DeliveryError):
            return (
                "RabbitMQ refused it (basic.nack): a queue it routes to may be full "
                "(x-overflow: reject-publish) or the broker could not store it"
            )
        return f"publishing failed: {error!r}"

    def _broken(self, *, channel: bool = False) -> bool:
        """Whether the connection (or, with `channel`, also the channel) is unusable."""
        if self._connection is None or self._connection.is_closed:
            return True
        return channel and (self._channel is None or self._channel.is_closed)

    async def _ready_exchange(self) -> AbstractExchange:
        exchange = self._exchange
        if exchange is not None and not self._broken(channel=True):
            return exchange
        async with self._lock:
            if self._exchange is None or self._broken(channel=True):
                await self._discard()
                self._exchange = await self._open()
            return self._exchange

    async def _open(self) -> AbstractExchange:
        connection = await connect(self._url, self._connect_timeout)
        try:
            async with asyncio.timeout(self._connect_timeout):
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
                exchange = await declare_exchange(
                    channel, self._exchange_name, self._exchange_type, declare=self._declare
                )
        except BaseException as error:
            await close_quietly(connection, self._connect_timeout)
            if isinstance(error, CONNECTION_ERRORS):
                raise BrokerConnectionError(
                    f"cannot open a channel to RabbitMQ at {safe_url(self._url)}: {error!r}"
                ) from error
            if isinstance(error, ChannelClosed):
                raise PublishError(
                    f"cannot declare RabbitMQ exchange {self._exchange_name!r} "
                    f"({self._exchange_type}): {error}"
                ) from error
            raise
        self._connection, self._channel = connection, channel
        return exchange

    async def _discard(self) -> None:
        connection, self._connection = self._connection, None
        self._channel = self._exchange = None
        await close_quietly(connection, self._connect_timeout)

    async def close(self) -> None:
        """Close the connection (idempotent; a later `publish` opens a new one)."""
        await self._discard()

    async def __aenter__(self) -> RabbitMqPublisher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
