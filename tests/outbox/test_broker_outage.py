"""The broker unreachable for a few seconds while commands keep committing: the relay
backs off without dead-lettering anything, the consumer resubscribes, and every message
has exactly one effect once the broker is back."""

from __future__ import annotations

import anyio
import pytest
from sqlalchemy import Table, func, select

from eventcore import OutboxRelay, SqlAlchemyEventStore
from tests.brokers._proxy import TcpProxy
from tests.outbox._brokers import BrokerNames
from tests.outbox._harness import (
    Producer,
    all_handled,
    all_recorded,
    assert_exactly_once,
    consuming,
    first_arrivals,
    report,
    until,
)
from tests.outbox._model import LedgerContract, sequenced_on

pytestmark = [pytest.mark.anyio, pytest.mark.postgres, pytest.mark.slow]

OUTAGE = 2.5  # seconds the broker stays unreachable


async def test_a_broker_outage_delays_messages_but_loses_and_kills_none(
    postgres_event_store: SqlAlchemyEventStore, effects: Table, broker: BrokerNames
) -> None:
    store = postgres_event_store
    contract = LedgerContract(sequenced_on(broker.topic))
    producer = Producer(store, contract, [f"ledger-{i}" for i in range(8)], pace=0.02)
    producing = True
    produced = anyio.Event()

    async def produce() -> None:
        while producing:
            await producer.round()
        produced.set()

    async with TcpProxy(broker.url) as proxy:
        publisher = broker.publisher(proxy.url)
        # Two refusals would kill a message: whole-batch failures must not count.
        relay = OutboxRelay(
            store, publisher, batch_size=20, max_attempts=2, backoff=0.1, max_backoff=0.5,
            poll_interval=0.05, lease=5.0,
        )  # fmt: skip
        with anyio.fail_after(40):
            async with (
                consuming(store, effects, broker.source(proxy.url)) as consumer,
                anyio.create_task_group() as group,
            ):
                worker = consumer.worker
                group.start_soon(relay.run)
                group.start_soon(produce)
                await until(lambda: worker.handled >= 20, 10, lambda: f"{worker.handled} handled")
                await proxy.pause()  # the broker is down: connections reset, none accepted
                down_at = len(producer.committed)
                await until(
                    lambda: relay.metrics.broker_failures >= 2,
                    10,
                    lambda: f"the relay saw no outage: {relay.metrics}",
                )
                await anyio.sleep(OUTAGE)  # commands keep committing meanwhile
                during = relay.metrics
                handled_during = worker.handled
                await proxy.resume()
                up_at = len(producer.committed)
                producing = False
                await produced.wait()
                await all_handled(store, effects, producer.committed)
                await all_recorded(store, producer.committed)
                group.cancel_scope.cancel()
        await publisher.close()

    committed = producer.committed
    await assert_exactly_once(store, effects, committed)
    outbox = store.tables.outbox
    async with store.engine.connect() as conn:
        attempts = await conn.scalar(select(func.max(outbox.c.attempts)))
    line = report(
        "broker outage", broker.kind, committed=len(committed),
        committed_during_outage=up_at - down_at, published=relay.metrics.published,
        broker_failures_in_a_row=during.broker_failures, failed_publishes=during.failed,
        dead=relay.metrics.dead, max_attempts_recorded=attempts,
        delivered=len(consumer.source.arrivals), handled=worker.handled,
        duplicates=worker.duplicates,
    )  # fmt: skip
    assert during.broker_failures >= 2, line
    assert during.failed > 0, line
    assert "BrokerConnectionError" in (during.last_error or ""), line
    assert up_at - down_at > 0, line  # messages were committed while the broker was down
    assert relay.metrics.broker_failures == 0, line  # healthy again
    assert relay.metrics.dead == 0, line
    assert attempts == 0, line  # no message was blamed for the outage
    assert await store.outbox.dead_letters() == [], line
    assert relay.metrics.published >= len(committed) == worker.handled, line
    assert worker.handled - handled_during > 0, line  # the consumer came back too
    for key, numbers in first_arrivals(consumer.source.entries()).items():
        assert numbers == sorted(numbers), f"{key} arrived out of order: {numbers}"
