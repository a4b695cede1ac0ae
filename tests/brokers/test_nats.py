"""The NATS JetStream adapter against a real server: acks, order, de-duplication,
failures, reconnects."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

import anyio
import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from eventcore import (
    BrokerConnectionError,
    ConsumerError,
    Delivery,
    Message,
    MessageHeaders,
    PublishError,
)
from eventcore.nats import NatsDelivery, NatsPublisher, NatsSource, ensure_stream
from eventcore.testing import BrokerContract
from tests.brokers._proxy import TcpProxy

pytestmark = [pytest.mark.anyio, pytest.mark.nats]


@dataclass(frozen=True)
class Names:
    """A test's own stream, subjects (`<prefix>.>`) and durable consumer."""

    url: str
    js: JetStreamContext
    stream: str
    prefix: str

    @property
    def topic(self) -> str:
        return f"{self.prefix}.orders.placed"

    @property
    def subjects(self) -> list[str]:
        return [f"{self.prefix}.>"]

    def publisher(self, *, url: str | None = None, **options: Any) -> NatsPublisher:
        return NatsPublisher(url or self.url, stream=self.stream, subjects=self.subjects, **options)

    def source(self, *, url: str | None = None, **options: Any) -> NatsSource:
        options.setdefault("durable", "billing")
        return NatsSource(url or self.url, stream=self.stream, subjects=self.subjects, **options)

    def messages(
        self, count: int, *, key: str = "order-1", topic: str = "orders.placed"
    ) -> list[Message]:
        return [
            Message(
                message_id=uuid.uuid4(),
                topic=f"{self.prefix}.{topic}",
                key=key,
                type="orders.OrderPlaced",
                schema_version=2,
                payload=b'{"n": %d}' % n,
                headers={MessageHeaders.CORRELATION_ID: f"corr-{n}", "tenant": "acme"},
            )
            for n in range(count)
        ]

    async def settled_consumer(self) -> tuple[int, int]:
        """The durable consumer's (pending, redelivered) counts once no delivered
        message awaits its ack (acks are asynchronous: waits up to 5 s for that)."""
        with anyio.fail_after(5):
            while True:
                info = await self.js.consumer_info(self.stream, "billing")
                if info.num_ack_pending == 0:
                    return info.num_pending or 0, info.num_redelivered or 0
                await anyio.sleep(0.01)

    async def stored(self) -> int:
        """How many messages the stream holds."""
        info = await self.js.stream_info(self.stream)
        return info.state.messages


@pytest.fixture
async def client(nats_url: str) -> AsyncIterator[Client]:
    connection = await nats.connect(nats_url, allow_reconnect=False)
    yield connection
    await connection.close()


@pytest.fixture
async def names(nats_url: str, client: Client) -> AsyncIterator[Names]:
    suffix = uuid.uuid4().hex[:10]
    js = client.jetstream()
    created = Names(nats_url, js, f"EC_TEST_{suffix}", f"ectest.{suffix}")
    yield created
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await js.delete_stream(created.stream)


async def receive(source: NatsSource, count: int, *, ack: bool = True) -> list[Delivery]:
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


async def _until(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(5):
        while True:
            if condition():
                return
            await anyio.sleep(0.01)


class TestNatsBroker(BrokerContract):
    """The broker contract, on a test's own stream and durable consumer."""

    @pytest.fixture
    async def destination(self, names: Names) -> Names:
        await ensure_stream(names.js, names.stream, names.subjects)
        return names


async def test_messages_carry_their_envelope_and_nats_msg_id_as_headers(names: Names) -> None:
    sent = names.messages(1)
    async with names.publisher() as publisher:
        assert await publisher.publish(sent) == {}

    [received] = await receive(names.source(), 1)

    assert received.message == sent[0]
    assert isinstance(received, NatsDelivery)
    raw = received.msg
    assert raw.headers is not None
    assert raw.headers["Nats-Msg-Id"] == str(sent[0].message_id)
    assert raw.headers[MessageHeaders.CONTENT_TYPE] == "application/json"
    assert raw.subject == f"{names.prefix}.orders.placed"
    assert await names.settled_consumer() == (0, 0)  # acked


async def test_jetstream_stores_a_message_id_once(names: Names) -> None:
    sent = names.messages(2)
    async with names.publisher() as publisher:
        assert await publisher.publish(sent) == {}
        assert await publisher.publish([sent[0], sent[0]]) == {}  # the relay retrying
    assert await names.stored() == 2
    received = await receive(names.source(), 2)
    assert [d.message for d in received] == sent


async def test_a_subject_no_stream_captures_is_reported_failed(names: Names) -> None:
    captured = names.messages(2)
    lost = Message(
        message_id=uuid.uuid4(), topic=f"nowhere.{names.prefix}", key="k", type="t",
        schema_version=1, payload=b"{}",
    )  # fmt: skip
    async with names.publisher() as publisher:
        failures = await publisher.publish([captured[0], lost, captured[1]])
    assert set(failures) == {lost.message_id}
    assert "no responders" in failures[lost.message_id]
    assert repr(lost.topic) in failures[lost.message_id]
    assert await names.stored() == 2


async def test_a_message_jetstream_refuses_is_reported_failed_with_why(names: Names) -> None:
    config = StreamConfig(name=names.stream, subjects=names.subjects, max_msg_size=512)
    await names.js.add_stream(config)
    small, big, after = names.messages(3)
    big = replace(big, payload=b'"%s"' % (b"x" * 1_000))
    async with NatsPublisher(names.url) as publisher:
        failures = await publisher.publish([small, big, after])
    assert set(failures) == {big.message_id}
    assert failures[big.message_id].startswith("JetStream refused it: ")
    assert "maximum" in failures[big.message_id]  # the server's own words
    assert await names.stored() == 2


async def test_a_message_over_the_servers_max_payload_fails_at_once(names: Names) -> None:
    small, huge, after = names.messages(3)
    huge = replace(huge, payload=b'"%s"' % (b"x" * 2_000_000))  # NATS allows 1 MB
    async with names.publisher(publish_timeout=5.0) as publisher:
        with anyio.fail_after(2):  # the others' acks, not the timeout, end the wait
            failures = await publisher.publish([small, huge, after])
    assert set(failures) == {huge.message_id}
    assert failures[huge.message_id].startswith("NATS refused to send it: ")
    assert await names.stored() == 2


async def test_ensure_stream_adds_missing_subjects_and_keeps_the_others(names: Names) -> None:
    first = await ensure_stream(names.js, names.stream, f"{names.prefix}.a")
    assert first.config.subjects == [f"{names.prefix}.a"]
    again = await ensure_stream(
        names.js, names.stream, [f"{names.prefix}.b"], duplicate_window=30.0
    )
    assert again.config.subjects == [f"{names.prefix}.a", f"{names.prefix}.b"]
    assert again.config.duplicate_window == 30.0
    other = f"{names.stream}_OTHER"  # JetStream refuses streams with overlapping subjects
    with pytest.raises(PublishError, match=other):
        await ensure_stream(names.js, other, f"{names.prefix}.>")


async def test_publisher_reconnects_after_the_connection_drops(names: Names) -> None:
    async with TcpProxy(names.url) as proxy, names.publisher(url=proxy.url) as publisher:
        assert await publisher.publish(names.messages(1)) == {}
        await proxy.cut()
        await _until(lambda: not publisher.connected)
        assert await publisher.publish(names.messages(1)) == {}  # reconnected
        assert publisher.connected

        await proxy.cut()  # a publish right after a drop never hangs
        with anyio.fail_after(5), contextlib.suppress(BrokerConnectionError):
            await publisher.publish(names.messages(1))

        await proxy.pause()  # the broker is down
        with anyio.fail_after(8), pytest.raises(BrokerConnectionError, match="cannot connect"):
            await publisher.publish(names.messages(1))
        await proxy.resume()
        assert await publisher.publish(names.messages(1)) == {}
    assert await names.stored() >= 3


async def test_a_stalled_connection_times_out_and_is_replaced(names: Names) -> None:
    sent = names.messages(3)
    async with TcpProxy(names.url) as proxy:
        options = {"publish_timeout": 0.5, "connect_timeout": 1.0}
        async with names.publisher(url=proxy.url, **options) as publisher:
            assert await publisher.publish(names.messages(1)) == {}
            proxy.freeze()
            # None acknowledged: the broker is blamed, not the messages.
            with anyio.fail_after(5), pytest.raises(BrokerConnectionError, match=r"0\.5 s"):
                await publisher.publish(sent)
            assert not publisher.connected  # dropped, not reused
            proxy.thaw()
            assert await publisher.publish(sent) == {}
    assert await names.stored() == 4


async def test_source_raises_when_the_connection_drops(names: Names) -> None:
    sent = names.messages(1)
    async with names.publisher() as publisher:
        assert await publisher.publish(sent) == {}
    async with TcpProxy(names.url) as proxy:
        source = names.source(url=proxy.url, ack_wait=1.0)
        with anyio.fail_after(5), pytest.raises(BrokerConnectionError, match="closed"):
            await _cut_before_the_ack(source, proxy, sent[0])

    [again] = await receive(names.source(ack_wait=1.0), 1)  # after the ack wait
    assert again.message == sent[0]
    assert again.redelivered


async def _cut_before_the_ack(source: NatsSource, proxy: TcpProxy, sent: Message) -> None:
    async with source.deliveries() as deliveries:
        async for delivery in deliveries:
            assert delivery.message == sent
            await proxy.cut()


async def test_consuming_a_missing_stream_fails(names: Names) -> None:
    with pytest.raises(ConsumerError, match=names.stream):
        async with names.source().deliveries():
            pass


async def test_undecodable_messages_are_terminated_once(
    names: Names, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    await ensure_stream(names.js, names.stream, names.subjects)
    await names.js.publish(f"{names.prefix}.orders.placed", b"not an eventcore message")
    good = names.messages(1)
    async with names.publisher() as publisher:
        assert await publisher.publish(good) == {}
    with caplog.at_level(logging.WARNING, logger="eventcore.nats"):
        [delivery] = await receive(names.source(), 1)
    assert delivery.message == good[0]
    assert "undecodable" in caplog.text
    assert "message-id" in caplog.text
    assert await names.settled_consumer() == (0, 0)
    assert await names.stored() == 2  # terminated, not deleted


async def test_an_unreachable_broker_raises_broker_connection_error() -> None:
    url = "nats://127.0.0.1:1"
    with anyio.fail_after(8):
        with pytest.raises(BrokerConnectionError, match=r"127\.0\.0\.1:1"):
            await NatsPublisher(url).publish([_any_message()])
        source = NatsSource(url, stream="NEVER", subjects="never", durable="never")
        with pytest.raises(BrokerConnectionError):
            async with source.deliveries():
                pass


def _any_message() -> Message:
    return Message(uuid.uuid4(), "never", "k", "t", 1, b"{}")


def test_the_extra_is_named_when_nats_py_is_missing() -> None:
    code = (
        "import sys\n"
        "sys.modules['nats'] = None\n"
        "import eventcore\n"
        "try:\n"
        "    import eventcore.nats\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'eventcore-es[nats]'" in result.stdout


async def test_messages_not_even_sent_in_time_are_reported_failed(names: Names) -> None:
    big = [replace(m, payload=b'"%s"' % (b"x" * 500_000)) for m in names.messages(100)]
    async with TcpProxy(names.url) as proxy:
        options = {"publish_timeout": 0.5, "connect_timeout": 1.0}
        async with names.publisher(url=proxy.url, **options) as publisher:
            assert await publisher.publish(names.messages(1)) == {}
            proxy.freeze()  # 50 MB cannot all go out: the socket buffers fill up
            with anyio.fail_after(5), pytest.raises(BrokerConnectionError) as raised:
                await publisher.publish(big)
            assert not publisher.connected  # dropped, not reused
    assert "none of 100 message(s) within 0.5 s" in str(raised.value)
    assert "not even sent" in str(raised.value)


async def test_source_raises_when_the_connection_stalls(names: Names) -> None:
    await ensure_stream(names.js, names.stream, names.subjects)
    async with TcpProxy(names.url) as proxy:
        source = names.source(url=proxy.url, connect_timeout=1.0)
        with anyio.fail_after(8), pytest.raises(BrokerConnectionError, match="stalled"):
            await _freeze_while_waiting(source, proxy)


async def _freeze_while_waiting(source: NatsSource, proxy: TcpProxy) -> None:
    async with source.deliveries() as deliveries:
        proxy.freeze()
        async for _ in deliveries:
            pytest.fail("nothing was published")
