"""The RabbitMQ adapter against a real RabbitMQ: confirms, order, failures, reconnects."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
import anyio
import pytest

from eventcore import (
    BrokerConnectionError,
    ConsumerError,
    Delivery,
    Message,
    MessageHeaders,
)
from eventcore.rabbitmq import (
    RabbitMqDelivery,
    RabbitMqPublisher,
    RabbitMqSource,
    declare_queue,
    delete_exchange,
    delete_queue,
    purge_queue,
)
from eventcore.testing import BrokerContract
from tests.brokers._proxy import TcpProxy

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq]


@dataclass(frozen=True)
class Names:
    """A test's own exchange and queue names (deleted afterwards)."""

    url: str
    exchange: str
    queue: str
    topic: str = "orders.placed"

    def publisher(self, *, url: str | None = None, **options: Any) -> RabbitMqPublisher:
        return RabbitMqPublisher(url or self.url, exchange=self.exchange, **options)

    def source(self, *, url: str | None = None, **options: Any) -> RabbitMqSource:
        return RabbitMqSource(
            url or self.url,
            queue=self.queue,
            bindings=["orders.#"],
            exchange=self.exchange,
            **options,
        )

    async def declare(self, **options: Any) -> None:
        await declare_queue(
            self.url, self.queue, bindings=["orders.#"], exchange=self.exchange, **options
        )


@pytest.fixture
async def names(rabbitmq_url: str) -> AsyncIterator[Names]:
    suffix = uuid.uuid4().hex[:10]
    created = Names(rabbitmq_url, f"ec_test_x_{suffix}", f"ec_test_q_{suffix}")
    yield created
    await delete_queue(rabbitmq_url, created.queue)
    await delete_exchange(rabbitmq_url, created.exchange)


def messages(count: int, *, key: str = "order-1", topic: str = "orders.placed") -> list[Message]:
    return [
        Message(
            message_id=uuid.uuid4(),
            topic=topic,
            key=key,
            type="orders.OrderPlaced",
            schema_version=2,
            payload=b'{"n": %d}' % n,
            headers={MessageHeaders.CORRELATION_ID: f"corr-{n}", "tenant": "acme"},
        )
        for n in range(count)
    ]


async def receive(source: RabbitMqSource, count: int, *, ack: bool = True) -> list[Delivery]:
    """The next `count` deliveries (acked unless `ack=False`)."""
    received: list[Delivery] = []
    with anyio.fail_after(10):
        async with source.deliveries() as deliveries:
            async for delivery in deliveries:
                received.append(delivery)
                if ack:
                    await delivery.ack()
                if len(received) == count:
                    break
    return received


class TestRabbitMqBroker(BrokerContract):
    """The broker contract, on a test's own exchange and queue."""

    @pytest.fixture
    async def destination(self, names: Names) -> Names:
        await names.declare()
        return names


async def test_messages_carry_their_envelope_as_amqp_properties(names: Names) -> None:
    sent = messages(1)
    await names.declare()
    async with names.publisher() as publisher:
        assert await publisher.publish(sent) == {}

    [received] = await receive(names.source(), 1)

    assert received.message == sent[0]
    assert isinstance(received, RabbitMqDelivery)
    amqp = received.incoming
    assert amqp.message_id == str(sent[0].message_id)
    assert amqp.type == "orders.OrderPlaced"
    assert amqp.content_type == "application/json"
    assert amqp.correlation_id == "corr-0"
    assert amqp.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert amqp.routing_key == "orders.placed"
    assert await purge_queue(names.url, names.queue) == 0  # acked


async def test_unroutable_messages_are_reported_failed(names: Names) -> None:
    await names.declare()
    routed = messages(2)
    lost = messages(1, topic="invoices.sent")
    async with names.publisher() as publisher:
        failures = await publisher.publish([routed[0], *lost, routed[1]])
        assert set(failures) == {lost[0].message_id}
        assert "no queue is bound" in failures[lost[0].message_id]
        assert "'invoices.sent'" in failures[lost[0].message_id]
    async with names.publisher(mandatory=False) as publisher:
        assert await publisher.publish(lost) == {}  # confirmed, and dropped by RabbitMQ
    assert await purge_queue(names.url, names.queue) == 2


async def test_messages_refused_by_a_full_queue_are_reported_failed(names: Names) -> None:
    await names.declare(arguments={"x-max-length": 2, "x-overflow": "reject-publish"})
    sent = messages(5)
    async with names.publisher() as publisher:
        failures = await publisher.publish(sent)
    assert set(failures) == {m.message_id for m in sent[2:]}
    assert all("basic.nack" in reason for reason in failures.values())


async def test_a_missing_exchange_fails_the_batch_and_the_next_publish_recovers(
    names: Names,
) -> None:
    await names.declare()
    sent = messages(3)
    async with names.publisher(declare=False) as publisher:
        await delete_exchange(names.url, names.exchange)
        failures = await publisher.publish(sent)
        assert set(failures) == {m.message_id for m in sent}
        assert all("NOT_FOUND" in reason for reason in failures.values())
        await names.declare()  # the exchange is back
        assert await publisher.publish(sent) == {}
    assert await purge_queue(names.url, names.queue) == 3


async def _until(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(5):
        while True:
            if condition():
                return
            await anyio.sleep(0.01)


async def test_publisher_reconnects_after_the_connection_drops(names: Names) -> None:
    await names.declare()
    async with TcpProxy(names.url) as proxy, names.publisher(url=proxy.url) as publisher:
        assert await publisher.publish(messages(1)) == {}
        await proxy.cut()
        await _until(lambda: not publisher.connected)
        assert await publisher.publish(messages(1)) == {}  # reconnected
        assert publisher.connected

        await proxy.cut()  # a publish right after a drop never hangs
        with contextlib.suppress(BrokerConnectionError):
            await publisher.publish(messages(1))

        await proxy.pause()  # the broker is down
        with anyio.fail_after(8), pytest.raises(BrokerConnectionError, match="cannot connect"):
            await publisher.publish(messages(1))
        await proxy.resume()
        assert await publisher.publish(messages(1)) == {}
    assert await purge_queue(names.url, names.queue) >= 3


async def test_a_stalled_connection_times_out_and_is_replaced(names: Names) -> None:
    await names.declare()
    sent = messages(3)
    async with TcpProxy(names.url) as proxy:
        options = {"publish_timeout": 0.5, "connect_timeout": 1.0}
        async with names.publisher(url=proxy.url, **options) as publisher:
            assert await publisher.publish(messages(1)) == {}
            proxy.freeze()
            # None confirmed: the broker is blamed (BrokerConnectionError), not the messages.
            with anyio.fail_after(5), pytest.raises(BrokerConnectionError, match=r"0\.5 s"):
                await publisher.publish(sent)
            assert not publisher.connected  # dropped, not reused
            proxy.thaw()
            assert await publisher.publish(sent) == {}


async def test_source_raises_when_the_connection_drops(names: Names) -> None:
    await names.declare()
    sent = messages(1)
    async with names.publisher() as publisher:
        assert await publisher.publish(sent) == {}
    async with TcpProxy(names.url) as proxy:
        source = names.source(url=proxy.url)
        with anyio.fail_after(5), pytest.raises(BrokerConnectionError, match="closed"):
            await _cut_before_the_ack(source, proxy, sent[0])

    [again] = await receive(names.source(), 1)
    assert again.message == sent[0]
    assert again.redelivered


async def _cut_before_the_ack(source: RabbitMqSource, proxy: TcpProxy, sent: Message) -> None:
    async with source.deliveries() as deliveries:
        async for delivery in deliveries:
            assert delivery.message == sent
            await proxy.cut()


async def test_consuming_a_missing_queue_without_declaring_it_fails(names: Names) -> None:
    with pytest.raises(ConsumerError, match=names.queue):
        async with names.source(declare=False).deliveries():
            pass


async def test_undecodable_messages_are_dead_lettered_once(
    names: Names, caplog: pytest.LogCaptureFixture
) -> None:
    dead = f"{names.queue}_dead"
    await declare_queue(names.url, dead, bindings=["#"], exchange=f"{names.exchange}_dlx")
    await names.declare(dead_letter_exchange=f"{names.exchange}_dlx")
    await _publish_raw(names, aio_pika.Message(b"not an eventcore message"))
    good = messages(1)
    async with names.publisher() as publisher:
        assert await publisher.publish(good) == {}
    try:
        with caplog.at_level(logging.WARNING, logger="eventcore.rabbitmq"):
            [delivery] = await receive(
                names.source(dead_letter_exchange=f"{names.exchange}_dlx"), 1
            )
        assert delivery.message == good[0]
        assert "undecodable" in caplog.text
        assert "message-type" in caplog.text
        assert await purge_queue(names.url, names.queue) == 0
        assert await purge_queue(names.url, dead) == 1
    finally:
        await delete_queue(names.url, dead)
        await delete_exchange(names.url, f"{names.exchange}_dlx")


async def _publish_raw(names: Names, message: aio_pika.Message) -> None:
    connection = await aio_pika.connect(names.url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(names.exchange)
        await exchange.publish(message, "orders.placed")


async def test_an_unreachable_broker_raises_broker_connection_error() -> None:
    url = "amqp://guest:guest@127.0.0.1:1/"
    with anyio.fail_after(8):
        with pytest.raises(BrokerConnectionError, match=r"127\.0\.0\.1:1"):
            await RabbitMqPublisher(url).publish(messages(1))
        with pytest.raises(BrokerConnectionError):
            async with RabbitMqSource(url, queue="never").deliveries():
                pass


def test_the_extra_is_named_when_aio_pika_is_missing() -> None:
    code = (
        "import sys\n"
        "sys.modules['aio_pika'] = None\n"
        "import eventcore\n"
        "try:\n"
        "    import eventcore.rabbitmq\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'eventcore-es[rabbitmq]'" in result.stdout
