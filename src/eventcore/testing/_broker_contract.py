"""`BrokerContract`: the behaviour every broker adapter (publisher and source) must have."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Protocol

import anyio
import pytest

from eventcore import Delivery, Message, MessageHeaders, MessageSource, Publisher

__all__ = ["BrokerContract", "BrokerDestination"]

_TIMEOUT = 10.0  # seconds any one wait of the suite may take


class BrokerDestination(Protocol):
    """Where one contract test publishes and consumes: declared, empty, its own."""

    @property
    def topic(self) -> str:
        """A topic whose messages the destination's sources receive."""
        ...

    def publisher(self) -> Publisher:
        """A new publisher to the destination (the test closes it)."""
        ...

    def source(self) -> MessageSource:
        """A new source consuming the destination, always the same queue or durable
        consumer (the test closes it)."""
        ...


class BrokerContract:
    """The contract test suite of broker adapters: a [`Publisher`][eventcore.Publisher]
    and the [`MessageSource`][eventcore.MessageSource] that consumes what it publishes.

    Subclass it in a test module (the subclass's name must start with `Test`) and
    override the `destination` fixture: a [`BrokerDestination`][eventcore.testing.BrokerDestination]
    of the test's own, declared and empty, deleted afterwards:

    ```python
    import pytest
    from eventcore.testing import BrokerContract, BrokerDestination

    class TestMyBroker(BrokerContract):
        @pytest.fixture
        async def destination(self) -> AsyncIterator[BrokerDestination]:
            queue = await declare_a_fresh_queue()
            yield MyDestination(queue)  # topic, publisher(), source()
            await delete(queue)
    ```

    It checks what the relay and the consumer workers rely on: messages arrive whole
    (envelope, headers, payload), in the order published; `retry` and unsettled
    deliveries come again, marked redelivered; `close` ends an iteration. Faults
    (connections dropped or stalled, brokers unreachable) depend on each broker's client
    and are for the adapter's own tests. The tests are async (`pytest.mark.anyio`).
    """

    @pytest.fixture
    def destination(self) -> BrokerDestination:
        """Override: the test's own destination (see the class)."""
        raise NotImplementedError("override the destination fixture")

    @pytest.mark.anyio
    async def test_publisher_and_source_satisfy_the_protocols(
        self, destination: BrokerDestination
    ) -> None:
        publisher, source = destination.publisher(), destination.source()
        try:
            assert isinstance(publisher, Publisher)
            assert isinstance(source, MessageSource)
            assert await publisher.publish([]) == {}  # nothing to do
        finally:
            await publisher.close()
            await source.close()

    @pytest.mark.anyio
    async def test_a_round_trip_keeps_the_envelope_and_headers(
        self, destination: BrokerDestination
    ) -> None:
        sent = messages(destination.topic, 3)
        await publish(destination, sent)
        received = await receive(destination, 3)
        assert [d.message for d in received] == sent
        assert not any(d.redelivered for d in received)

    @pytest.mark.anyio
    async def test_a_thousand_messages_of_one_key_keep_their_order(
        self, destination: BrokerDestination
    ) -> None:
        sent = messages(destination.topic, 1000)
        await publish(destination, sent[:600], sent[600:])
        received = await receive(destination, 1000)
        assert [d.message.message_id for d in received] == [m.message_id for m in sent]

    @pytest.mark.anyio
    async def test_a_retried_delivery_comes_again_marked_redelivered(
        self, destination: BrokerDestination
    ) -> None:
        [sent] = messages(destination.topic, 1)
        await publish(destination, [sent])
        seen: list[tuple[uuid.UUID, bool]] = []

        async def retry_first(delivery: Delivery) -> bool:
            seen.append((delivery.message.message_id, delivery.redelivered))
            if len(seen) == 1:
                await delivery.retry(0.2)
                return False
            await delivery.ack()
            return True

        await consume(destination, retry_first)
        assert seen == [(sent.message_id, False), (sent.message_id, True)]

    @pytest.mark.anyio
    async def test_unsettled_deliveries_come_again_after_the_block(
        self, destination: BrokerDestination
    ) -> None:
        sent = messages(destination.topic, 3)
        await publish(destination, sent)
        [first] = await receive(destination, 1, ack=False)  # left unsettled
        assert first.message == sent[0]
        received = await receive(destination, 3)
        assert [d.message for d in received] == sent
        assert received[0].redelivered

    @pytest.mark.anyio
    async def test_close_ends_the_iteration(self, destination: BrokerDestination) -> None:
        sent = messages(destination.topic, 1)
        await publish(destination, sent)
        source = destination.source()
        seen: list[Message] = []

        async def iterate() -> None:
            async with source.deliveries() as deliveries:
                async for delivery in deliveries:
                    seen.append(delivery.message)
                    await delivery.ack()

        with anyio.fail_after(_TIMEOUT):
            async with anyio.create_task_group() as group:
                group.start_soon(iterate)
                while True:
                    if seen:
                        break
                    await anyio.sleep(0.01)
                await source.close()  # iterate() returns, without an error
        await source.close()  # idempotent
        assert seen == sent


def messages(topic: str, count: int, *, key: str = "order-1") -> list[Message]:
    """`count` messages to `topic` on one key, with headers of their own."""
    return [
        Message(
            message_id=uuid.uuid4(),
            topic=topic,
            key=key,
            type="contract.OrderPlaced",
            schema_version=2,
            payload=b'{"n": %d}' % n,
            headers={MessageHeaders.CORRELATION_ID: f"corr-{n}", "tenant": "acme"},
        )
        for n in range(count)
    ]


async def publish(destination: BrokerDestination, *batches: list[Message]) -> None:
    """Publish each batch in turn on one publisher; every message must be confirmed."""
    async with _closing_publisher(destination) as publisher:
        for batch in batches:
            with anyio.fail_after(_TIMEOUT):
                assert await publisher.publish(batch) == {}


async def receive(
    destination: BrokerDestination, count: int, *, ack: bool = True
) -> list[Delivery]:
    """The next `count` deliveries of a new source (acked unless `ack=False`)."""
    received: list[Delivery] = []

    async def take(delivery: Delivery) -> bool:
        received.append(delivery)
        if ack:
            await delivery.ack()
        return len(received) == count

    await consume(destination, take)
    return received


async def consume(
    destination: BrokerDestination, handle: Callable[[Delivery], Awaitable[bool]]
) -> None:
    """Feed a new source's deliveries to `handle` until it returns true."""
    source = destination.source()
    try:
        with anyio.fail_after(_TIMEOUT):
            async with source.deliveries() as deliveries:
                async for delivery in deliveries:
                    if await handle(delivery):
                        return
    finally:
        await source.close()


@asynccontextmanager
async def _closing_publisher(destination: BrokerDestination) -> AsyncIterator[Publisher]:
    publisher = destination.publisher()
    try:
        yield publisher
    finally:
        await publisher.close()
