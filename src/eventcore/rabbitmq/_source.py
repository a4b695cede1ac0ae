"""`RabbitMqSource`: consumes a durable queue bound to eventcore's exchange."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
)
from aio_pika.exceptions import AMQPError, ChannelClosed, ChannelInvalidStateError

from eventcore import BrokerConnectionError, ConsumerError, Delivery, Message, MessageHeaders
from eventcore.rabbitmq._topology import (
    CONNECTION_ERRORS,
    DEFAULT_EXCHANGE,
    close_quietly,
    connect,
    safe_url,
    setup_queue,
)

__all__ = ["RabbitMqDelivery", "RabbitMqSource", "decode"]

_log = logging.getLogger("eventcore.rabbitmq")


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else str(value)


def decode(incoming: AbstractIncomingMessage) -> Message:
    """The `Message` in an AMQP message (raises `ValueError` if it is not one).

    The envelope comes from the headers, falling back on the AMQP `message_id` and
    `type` properties, so messages published by other clients decode too.
    """
    headers = {key: _text(value) for key, value in (incoming.headers or {}).items()}
    if incoming.message_id:
        headers.setdefault(MessageHeaders.MESSAGE_ID, incoming.message_id)
    if incoming.type:
        headers.setdefault(MessageHeaders.TYPE, incoming.type)
    return Message.from_headers(incoming.routing_key or "", incoming.body, headers)


MAX_RETRY_DELAY = 30.0
"""The longest wait of `RabbitMqDelivery.retry` before it requeues a message."""


class RabbitMqDelivery:
    """A message received from RabbitMQ; settle it with `ack` or `retry`."""

    __slots__ = ("_incoming", "_message")

    def __init__(self, incoming: AbstractIncomingMessage, message: Message) -> None:
        self._incoming = incoming
        self._message = message

    @property
    def message(self) -> Message:
        """The message received."""
        return self._message

    @property
    def redelivered(self) -> bool:
        """Whether RabbitMQ delivered it before (the AMQP `redelivered` flag)."""
        return bool(self._incoming.redelivered)

    @property
    def incoming(self) -> AbstractIncomingMessage:
        """The aio-pika message, for what the `Delivery` protocol does not cover."""
        return self._incoming

    async def ack(self) -> None:
        """Done with it: RabbitMQ removes it from the queue (`basic.ack`)."""
        try:
            await self._incoming.ack()
        except (ChannelInvalidStateError, AMQPError, *CONNECTION_ERRORS) as error:
            raise self._lost("ack", error) from error

    async def retry(self, delay: float) -> None:
        """Requeue it (`basic.nack` with `requeue`) after waiting `delay` seconds (at most
        `MAX_RETRY_DELAY`).

        RabbitMQ queues have no delayed redelivery and put a requeued message back at
        its place, so the wait happens here, holding this delivery (and, with a
        sequential consumer, the ones after it: a failing message holds its successors
        back rather than being overtaken by them).
        """
        await anyio.sleep(min(max(delay, 0.0), MAX_RETRY_DELAY))
        try:
            await self._incoming.nack(requeue=True)
        except (ChannelInvalidStateError, AMQPError, *CONNECTION_ERRORS) as error:
            raise self._lost("requeue", error) from error

    def _lost(self, action: str, error: BaseException) -> BrokerConnectionError:
        return BrokerConnectionError(
            f"cannot {action} message {self._message.message_id}: the channel to RabbitMQ "
            f"closed ({error!r}); RabbitMQ will deliver it again"
        )


class _Deliveries:
    """The async iterator `RabbitMqSource.deliveries()` yields."""

    def __init__(self, queue: str, channel: AbstractChannel) -> None:
        self._queue = queue
        self._inbox: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()
        self.stopped = False
        channel.close_callbacks.add(self._on_close)

    def _on_close(self, *_: object) -> None:
        self._inbox.put_nowait(None)

    def stop(self) -> None:
        """End the iteration (the source is closing the connection on purpose)."""
        self.stopped = True
        self._inbox.put_nowait(None)

    async def receive(self, incoming: AbstractIncomingMessage) -> None:
        self._inbox.put_nowait(incoming)

    def __aiter__(self) -> _Deliveries:
        return self

    async def __anext__(self) -> Delivery:
        while True:
            incoming = await self._inbox.get()
            if self.stopped:
                raise StopAsyncIteration
            if incoming is None:
                raise BrokerConnectionError(
                    f"the channel to RabbitMQ closed while consuming queue {self._queue!r}"
                )
            try:
                return RabbitMqDelivery(incoming, decode(incoming))
            except (ValueError, TypeError) as error:
                await self._reject(incoming, error)

    async def _reject(self, incoming: AbstractIncomingMessage, error: Exception) -> None:
        _log.warning(
            "rejecting an undecodable message on RabbitMQ queue %r (routing key %r, "
            "message id %r): %s; it goes to the queue's dead-letter exchange, if any",
            self._queue,
            incoming.routing_key,
            incoming.message_id,
            error,
        )
        try:
            await incoming.reject(requeue=False)
        except (ChannelInvalidStateError, AMQPError, *CONNECTION_ERRORS) as lost:
            raise BrokerConnectionError(
                f"the channel to RabbitMQ closed while consuming queue {self._queue!r}: {lost!r}"
            ) from lost


class RabbitMqSource:
    """Consumes a durable RabbitMQ queue bound to eventcore's exchange.

    `deliveries()` connects, declares (with `declare=True`) the durable exchange and
    the durable `queue`, binds it once per pattern in `bindings` (routing keys, with
    `*` and `#` wildcards on a topic exchange), and consumes it with at most
    `prefetch` unsettled messages:

    ```python
    async with source.deliveries() as deliveries:
        async for delivery in deliveries:
            ...  # handle delivery.message
            await delivery.ack()
    ```

    `retry(delay)` holds the message for `delay` seconds (at most `MAX_RETRY_DELAY`),
    then requeues it (RabbitMQ has no delayed redelivery); `redelivered` is the AMQP
    flag. A message that cannot be decoded into a
    [`Message`][eventcore.Message] is logged (a warning on the `eventcore.rabbitmq`
    logger) and rejected without requeueing: RabbitMQ dead-letters it to
    `dead_letter_exchange` if the queue has one, and drops it otherwise. When the
    connection drops, the iteration raises
    [`BrokerConnectionError`][eventcore.BrokerConnectionError]; the unsettled
    messages go back to the queue, and a new `deliveries()` block reconnects.
    `queue_arguments` are extra queue arguments (such as
    `{"x-queue-type": "quorum"}`).
    """

    def __init__(
        self,
        url: str,
        *,
        queue: str,
        bindings: Iterable[str] = (),
        exchange: str = DEFAULT_EXCHANGE,
        exchange_type: str = "topic",
        prefetch: int = 100,
        declare: bool = True,
        dead_letter_exchange: str | None = None,
        queue_arguments: Mapping[str, Any] | None = None,
        connect_timeout: float = 5.0,
    ) -> None:
        if prefetch < 1:
            raise ValueError(f"prefetch must be at least 1, not {prefetch}")
        self._url = url
        self._queue = queue
        self._bindings = tuple(bindings)
        self._exchange = exchange
        self._exchange_type = exchange_type
        self._prefetch = prefetch
        self._declare = declare
        self._dead_letter_exchange = dead_letter_exchange
        self._queue_arguments = dict(queue_arguments or {})
        self._connect_timeout = connect_timeout
        # The open connections, each with its iterator (once subscribed).
        self._connections: dict[AbstractConnection, _Deliveries | None] = {}

    @asynccontextmanager
    async def deliveries(self) -> AsyncIterator[AsyncIterator[Delivery]]:
        """An async context manager: consume the queue while the block is open, and
        iterate the deliveries it yields.

        Messages not settled when the block exits go back to the queue. Raises
        `BrokerConnectionError` if RabbitMQ cannot be reached, and `ConsumerError`
        if the queue cannot be declared as asked (it exists with other arguments).
        """
        connection = await connect(self._url, self._connect_timeout)
        self._connections[connection] = None
        try:
            async with asyncio.timeout(self._connect_timeout):
                deliveries = self._connections[connection] = await self._subscribe(connection)
        except CONNECTION_ERRORS as error:
            await self._close(connection)
            raise BrokerConnectionError(
                f"lost the connection to RabbitMQ at {safe_url(self._url)} while "
                f"subscribing to queue {self._queue!r}: {error!r}"
            ) from error
        except BaseException:
            await self._close(connection)
            raise
        try:
            yield deliveries
        finally:
            await self._close(connection)

    async def _subscribe(self, connection: AbstractConnection) -> _Deliveries:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=self._prefetch)
        queue = await self._queue_on(channel)
        deliveries = _Deliveries(self._queue, channel)
        await queue.consume(deliveries.receive)
        return deliveries

    async def _queue_on(self, channel: AbstractChannel) -> AbstractQueue:
        if not self._declare:
            try:
                return await channel.get_queue(self._queue, ensure=True)
            except ChannelClosed as error:
                raise ConsumerError(
                    f"cannot consume RabbitMQ queue {self._queue!r}: {error} "
                    "(declare it, or pass declare=True)"
                ) from error
        return await setup_queue(
            channel,
            self._queue,
            bindings=self._bindings,
            exchange=self._exchange,
            exchange_type=self._exchange_type,
            dead_letter_exchange=self._dead_letter_exchange,
            arguments=self._queue_arguments,
        )

    async def _close(self, connection: AbstractConnection) -> None:
        deliveries = self._connections.pop(connection, None)
        if deliveries is not None:
            deliveries.stop()
        await close_quietly(connection, self._connect_timeout)

    async def close(self) -> None:
        """Close the open `deliveries()` connections, ending their iterations
        (idempotent)."""
        for connection in list(self._connections):
            await self._close(connection)
