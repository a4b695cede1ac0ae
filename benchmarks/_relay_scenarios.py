"""The relay scenarios: the outbox published to a real broker by an `OutboxRelay`.

`relay_<broker>` times draining a filled outbox against a raw client loop that
publishes the same messages with the same confirmation mode and pipelining (see
`_brokers`); `relay_latency_<broker>` measures commit-to-confirmed latency under a
steady load committed by another process (`_relay_load`). Each scenario works in a
schema and a broker destination of its own, both deleted afterwards.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

from _brokers import BROKERS, Broker, BrokerUnavailable, Skipped
from _harness import Bench, Latency, Outcome, Throughput, alternate, per_second
from _model import item_dicts
from _relay_load import CUSTOMER, WRITERS, CartItemAdded, routed
from _scenarios import scenario
from eventcore import (
    EventStoreTables,
    Message,
    OutboxRelay,
    Publisher,
    PublishResult,
    SqlAlchemyEventStore,
    message_for,
)

__all__ = [
    "relay_latency_nats",
    "relay_latency_rabbitmq",
    "relay_nats",
    "relay_rabbitmq",
]

_BATCH = 500  # OutboxRelay's default batch_size, and the raw loops' batch
_KEYS = 100  # partition keys (carts) the throughput scenarios' messages are spread over
_FILL_CHUNK = 1_000  # outbox rows per transaction when filling
_MIN_RATIO = 0.70
_RATE = 500  # messages/s committed in the latency scenarios
_MAX_P99_MS = 50.0
_ADDED_AT = "2024-05-17T09:41:27.503118+00:00"
_LOAD = Path(__file__).with_name("_relay_load.py")


# -- a store and its outbox ------------------------------------------------------------------


@asynccontextmanager
async def _fresh_store(bench: Bench) -> AsyncIterator[SqlAlchemyEventStore]:
    """An eventcore store in a new schema, dropped afterwards."""
    schema = f"bench_relay_{uuid.uuid4().hex[:8]}"
    store = SqlAlchemyEventStore(bench.engine, tables=EventStoreTables(schema=schema))
    try:
        await store.create_schema()
        yield store
    finally:
        await store.close()
        async with bench.pool.acquire() as conn:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _messages(event_type: type[CartItemAdded], carts: Sequence[str], count: int) -> list[Message]:
    """`count` messages, on each cart in turn, with the headers a mapping gives them."""
    messages = []
    for i, fields in enumerate(item_dicts(0, count)):
        cart = carts[i % len(carts)]
        line = i // len(carts) + 1
        event = event_type(
            cart_id=cart, line=line, customer_id=CUSTOMER, added_at=_ADDED_AT, **fields
        )
        messages.append(
            message_for(
                event, key=cart, correlation_id=str(uuid.uuid4()), causation_id=str(uuid.uuid4())
            )
        )
    return messages


def _fresh(messages: Sequence[Message]) -> list[Message]:
    """The same messages with new ids (the outbox and JetStream de-duplicate on them)."""
    return [dataclasses.replace(m, message_id=uuid.uuid4()) for m in messages]


async def _fill(bench: Bench, store: SqlAlchemyEventStore, messages: Sequence[Message]) -> None:
    """Empty the outbox, write `messages` to it, and VACUUM ANALYZE it (untimed)."""
    await store.outbox.purge()
    for start in range(0, len(messages), _FILL_CHUNK):
        async with bench.engine.begin() as conn:
            await store.outbox.write(conn, messages[start : start + _FILL_CHUNK])
    async with bench.pool.acquire() as conn:
        await conn.execute(f"VACUUM ANALYZE {store.tables.qualified(store.tables.outbox)}")


# -- relay_<broker> --------------------------------------------------------------------------


async def _throughput(bench: Bench, broker_name: str) -> Outcome:
    name = f"relay_{broker_name}"
    count = bench.size(quick=5_000, full=20_000)
    try:
        async with BROKERS[broker_name]() as broker, _fresh_store(bench) as store:
            template = _messages(routed(broker.topic), bench.stream_ids("relay", _KEYS), count)
            publisher = broker.publisher()

            async def ec() -> float:
                await _fill(bench, store, _fresh(template))
                await broker.reset()
                relay = OutboxRelay(store, publisher, batch_size=_BATCH)
                return await per_second(count, _drain(relay, count))

            async def raw() -> float:
                await broker.reset()
                return await per_second(count, broker.raw_loop(_fresh(template), _BATCH)())

            try:
                rounds = bench.size(quick=3, full=5)  # a RabbitMQ round takes seconds
                ec_rates, raw_rates = await alternate([ec, raw], rounds)
            finally:
                await publisher.close()
    except BrokerUnavailable as error:
        return Skipped(name, f"skipped: cannot reach {error}")
    size = len(template[0].payload)
    return Throughput.from_rounds(
        name,
        ec_rates,
        raw_rates,
        _MIN_RATIO,
        extras={"messages": count, "batch_size": _BATCH, "payload_bytes": size},
        remarks=(
            f"{count:,} messages ({size} bytes of JSON each, {_KEYS} partition keys) in "
            f"batches of {_BATCH}, confirmed per batch, {len(ec_rates)} rounds; raw: the same "
            "publishes, no database",
        ),
    )


async def _drain(relay: OutboxRelay, count: int) -> None:
    published = await relay.publish_pending()
    if published != count:
        raise SystemExit(f"the relay published {published} of {count} messages")


@scenario("relay_rabbitmq")
async def relay_rabbitmq(bench: Bench) -> Outcome:
    """Drain the outbox to RabbitMQ (raw: aio-pika with the same publisher confirms)."""
    return await _throughput(bench, "rabbitmq")


@scenario("relay_nats")
async def relay_nats(bench: Bench) -> Outcome:
    """Drain the outbox to NATS JetStream (raw: nats-py publish_async, the same acks)."""
    return await _throughput(bench, "nats")


# -- relay_latency_<broker> ------------------------------------------------------------------


class _TimedPublisher:
    """A publisher that notes when each message was confirmed (its `publish` returned)."""

    def __init__(self, inner: Publisher) -> None:
        self._inner = inner
        self.confirmed_at: dict[uuid.UUID, float] = {}

    async def publish(self, messages: Sequence[Message]) -> PublishResult:
        """Publish through the inner publisher, noting the confirmed messages' time."""
        failures = await self._inner.publish(messages)
        now = time.perf_counter()
        for message in messages:
            if message.message_id not in failures:
                self.confirmed_at.setdefault(message.message_id, now)
        return failures

    async def close(self) -> None:
        """Close the inner publisher."""
        await self._inner.close()


async def _latency(bench: Bench, broker_name: str) -> Outcome:
    name = f"relay_latency_{broker_name}"
    seconds = bench.size(quick=3, full=10)
    try:
        async with BROKERS[broker_name]() as broker, _fresh_store(bench) as store:
            publisher = _TimedPublisher(broker.publisher())
            relay = OutboxRelay(store, publisher)
            try:
                samples, rate = await _measure(bench, store, broker, publisher, relay, seconds)
            finally:
                await publisher.close()
    except BrokerUnavailable as error:
        return Skipped(name, f"skipped: cannot reach {error}")
    metrics = relay.metrics
    return _summary(name, samples, rate, seconds, metrics.published / max(metrics.batches, 1))


async def _measure(
    bench: Bench,
    store: SqlAlchemyEventStore,
    broker: Broker,
    publisher: _TimedPublisher,
    relay: OutboxRelay,
    seconds: float,
) -> tuple[list[float], float]:
    """Run the relay while another process commits the load; the latency samples (ms)
    and the load's rate."""
    url = bench.engine.url.render_as_string(hide_password=False)
    schema = store.tables.schema or "public"
    [prefix] = bench.stream_ids("relaylive", 1)
    args = (url, schema, broker.topic, str(_RATE), str(seconds), prefix)
    async with anyio.create_task_group() as group:
        group.start_soon(relay.run)
        committed, rate = await _load(args)
        await _confirmed(publisher, committed)
        group.cancel_scope.cancel()
    confirmed = publisher.confirmed_at
    return sorted(1000 * (confirmed[key] - at) for key, at in committed.items()), rate


async def _load(args: Sequence[str]) -> tuple[dict[uuid.UUID, float], float]:
    """Run the writer process; when each commit returned, by message id, and its rate."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(_LOAD), *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        with anyio.fail_after(120):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        raise SystemExit(f"the writer process failed: {err.decode()[-2000:]}")
    result = json.loads(out)
    committed = {uuid.UUID(key): at for key, at in result["committed"].items()}
    return committed, float(result["rate"])


async def _confirmed(publisher: _TimedPublisher, committed: dict[uuid.UUID, float]) -> None:
    """Wait (a minute at most) until every committed message was confirmed."""
    for _ in range(6000):
        if committed.keys() <= publisher.confirmed_at.keys():
            return
        await anyio.sleep(0.01)
    missing = len(committed.keys() - publisher.confirmed_at.keys())
    raise SystemExit(f"{missing} of {len(committed)} committed messages were not confirmed")


def _summary(
    name: str, samples: list[float], rate: float, seconds: float, per_batch: float
) -> Latency:
    p90, worst = samples[int(0.9 * (len(samples) - 1))], samples[-1]
    return Latency.from_samples(
        name,
        samples,
        _MAX_P99_MS,
        extras={
            "messages": len(samples),
            "load_per_s": rate,
            "p90_ms": p90,
            "max_ms": worst,
            "messages_per_batch": per_batch,
        },
        remarks=(
            f"{len(samples):,} messages in {seconds} s at {rate:,.0f}/s, one per unit of work, "
            f"from {WRITERS} writers in another process (NOTIFY wake-ups); commit returned -> "
            f"publish confirmed: p90 {p90:.1f} ms, max {worst:.1f} ms; "
            f"{per_batch:.1f} messages per batch",
        ),
    )


@scenario("relay_latency_rabbitmq")
async def relay_latency_rabbitmq(bench: Bench) -> Outcome:
    """Commit to confirmed by RabbitMQ, p50/p99, under 500 messages/s."""
    return await _latency(bench, "rabbitmq")


@scenario("relay_latency_nats")
async def relay_latency_nats(bench: Bench) -> Outcome:
    """Commit to acknowledged by JetStream, p50/p99, under 500 messages/s."""
    return await _latency(bench, "nats")
