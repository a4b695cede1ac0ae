"""From a command to the consumer's read model, through the outbox, a relay, a real
broker and the inbox: every committed message has exactly one effect."""

from __future__ import annotations

import anyio
import pytest
from sqlalchemy import Table

from eventcore import OutboxRelay, SqlAlchemyEventStore
from eventcore._messaging._encoding import message_id_for
from tests.outbox._brokers import BrokerNames
from tests.outbox._harness import (
    Producer,
    all_handled,
    all_recorded,
    assert_exactly_once,
    consuming,
    first_arrivals,
    report,
)
from tests.outbox._model import LedgerContract, sequenced_on

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


async def test_commands_reach_the_read_model_exactly_once(
    postgres_event_store: SqlAlchemyEventStore, effects: Table, broker: BrokerNames
) -> None:
    store = postgres_event_store
    contract = LedgerContract(sequenced_on(broker.topic))
    producer = Producer(store, contract, [f"ledger-{i}" for i in range(6)])
    publisher = broker.publisher()
    relay = OutboxRelay(store, publisher, batch_size=20, poll_interval=0.1)
    with anyio.fail_after(30):
        async with (
            consuming(store, effects, broker.source()) as consumer,
            anyio.create_task_group() as group,
        ):
            group.start_soon(relay.run)
            await producer.rounds(5)
            await all_handled(store, effects, producer.committed)
            await all_recorded(store, producer.committed)
            group.cancel_scope.cancel()
    await publisher.close()

    committed = producer.committed
    rows = await assert_exactly_once(store, effects, committed)
    worker = consumer.worker
    report(
        "end-to-end", broker.kind, committed=len(committed), published=relay.metrics.published,
        delivered=len(consumer.source.arrivals), handled=worker.handled,
        duplicates=worker.duplicates,
    )  # fmt: skip
    assert len(committed) == 50  # 30 commands, every third with three entries
    assert relay.metrics.published == worker.handled == len(committed)
    assert (relay.metrics.failed, relay.metrics.dead, worker.duplicates) == (0, 0, 0)
    expected_ids = set()
    for key in producer.keys:
        for recorded in await store.read_stream(key):
            [event] = contract.translate(recorded)
            expected_ids.add(message_id_for(recorded, event, 0))
    assert {message_id for message_id, _, _ in rows} == expected_ids
    for key, numbers in first_arrivals(consumer.source.entries()).items():
        assert numbers == sorted(numbers), f"{key} arrived out of order: {numbers}"
