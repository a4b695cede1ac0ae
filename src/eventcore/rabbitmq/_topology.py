"""Connecting to RabbitMQ, and declaring eventcore's exchange and queues."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, AbstractQueue
from aio_pika.exceptions import AMQPConnectionError, AMQPError, ChannelClosed
from yarl import URL

from eventcore import BrokerConnectionError, ConsumerError

__all__ = [
    "CONNECTION_ERRORS",
    "DEFAULT_EXCHANGE",
    "close_quietly",
    "connect",
    "declare_exchange",
    "declare_queue",
    "delete_exchange",
    "delete_queue",
    "purge_queue",
    "safe_url",
    "setup_queue",
]

DEFAULT_EXCHANGE = "eventcore"
"""The exchange publishers publish to and sources bind their queues to by default."""

# What aio-pika raises when the connection is (or goes) down; channel errors are not here.
CONNECTION_ERRORS = (OSError, TimeoutError, AMQPConnectionError, ConnectionError)


def safe_url(url: str) -> str:
    """`url` with its password masked, for error messages."""
    parsed = URL(url)
    return str(parsed.with_password("***")) if parsed.password else url


async def connect(url: str, timeout: float) -> AbstractConnection:
    """A new connection to RabbitMQ, or `BrokerConnectionError` within about `timeout` s."""
    try:
        async with asyncio.timeout(timeout):
            return await aio_pika.connect(url, timeout=timeout)
    except (*CONNECTION_ERRORS, AMQPError) as error:
        raise BrokerConnectionError(
            f"cannot connect to RabbitMQ at {safe_url(url)}: {error!r}"
        ) from error


async def close_quietly(connection: AbstractConnection | None, timeout: float) -> None:
    """Close `connection`, bounded by `timeout`, ignoring errors (it may be dead already)."""
    if connection is None or connection.is_closed:
        return
    with contextlib.suppress(Exception):
        async with asyncio.timeout(timeout):
            await connection.close()


async def declare_exchange(
    channel: AbstractChannel, name: str, exchange_type: str, *, declare: bool
) -> AbstractExchange:
    """The durable exchange `name`, declared unless `declare` is false."""
    if not declare:
        return await channel.get_exchange(name, ensure=False)
    return await channel.declare_exchange(name, exchange_type, durable=True)


async def setup_queue(
    channel: AbstractChannel,
    queue: str,
    *,
    bindings: Iterable[str],
    exchange: str,
    exchange_type: str,
    dead_letter_exchange: str | None,
    arguments: Mapping[str, Any] | None,
) -> AbstractQueue:
    """Declare the durable `queue` and bind it to `exchange` once per binding pattern."""
    args: dict[str, Any] = dict(arguments or {})
    if dead_letter_exchange is not None:
        args["x-dead-letter-exchange"] = dead_letter_exchange
    try:
        source = await declare_exchange(channel, exchange, exchange_type, declare=True)
        declared = await channel.declare_queue(queue, durable=True, arguments=args or None)
        for pattern in bindings:
            await declared.bind(source, pattern)
    except ChannelClosed as error:
        raise ConsumerError(
            f"cannot declare RabbitMQ queue {queue!r} bound to exchange {exchange!r}: {error} "
            "(does it exist already with other arguments, or the exchange with another type?)"
        ) from error
    return declared


@contextlib.asynccontextmanager
async def _channel(url: str, timeout: float) -> AsyncIterator[AbstractChannel]:
    connection = await connect(url, timeout)
    try:
        yield await connection.channel()
    except CONNECTION_ERRORS as error:
        raise BrokerConnectionError(f"the connection to RabbitMQ dropped: {error!r}") from error
    finally:
        await close_quietly(connection, timeout)


async def declare_queue(
    url: str,
    queue: str,
    *,
    bindings: Iterable[str] = (),
    exchange: str = DEFAULT_EXCHANGE,
    exchange_type: str = "topic",
    dead_letter_exchange: str | None = None,
    arguments: Mapping[str, Any] | None = None,
    connect_timeout: float = 5.0,
) -> None:
    """Declare the durable `queue`, bound to `exchange` once per pattern in `bindings`.

    The same as a [`RabbitMqSource`][eventcore.rabbitmq.RabbitMqSource] declares when it
    starts; call it before publishing to have the messages kept until a consumer starts
    (a [`RabbitMqPublisher`][eventcore.rabbitmq.RabbitMqPublisher] with `mandatory=True`
    reports messages that no queue is bound for as failed). `arguments` are extra queue
    arguments, such as `{"x-queue-type": "quorum"}` or `{"x-max-length": 10_000}`.
    Declaring an existing queue again with the same arguments does nothing.
    """
    async with _channel(url, connect_timeout) as channel:
        await setup_queue(
            channel,
            queue,
            bindings=bindings,
            exchange=exchange,
            exchange_type=exchange_type,
            dead_letter_exchange=dead_letter_exchange,
            arguments=arguments,
        )


async def purge_queue(url: str, queue: str, *, connect_timeout: float = 5.0) -> int:
    """Drop every ready message from `queue`; returns how many were dropped."""
    async with _channel(url, connect_timeout) as channel:
        result = await (await channel.get_queue(queue, ensure=False)).purge()
        return int(result.message_count or 0)


async def delete_queue(url: str, queue: str, *, connect_timeout: float = 5.0) -> None:
    """Delete `queue` and its messages (nothing happens if it does not exist)."""
    async with _channel(url, connect_timeout) as channel:
        await channel.queue_delete(queue)


async def delete_exchange(url: str, exchange: str, *, connect_timeout: float = 5.0) -> None:
    """Delete `exchange` and its bindings (nothing happens if it does not exist)."""
    async with _channel(url, connect_timeout) as channel:
        await channel.exchange_delete(exchange)
