"""Several relays at once (two in this process, one in another), sharing the outbox's
lanes while they move between them: each partition key's messages still arrive in the
order they were committed."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import anyio
import pytest
from sqlalchemy import Table

from eventcore import OutboxRelay, SqlAlchemyEventStore
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
from tests.outbox._model import Entry, LedgerContract, sequenced_on
from tests.outbox._processes import RelayProcess, relay_processes

pytestmark = [pytest.mark.anyio, pytest.mark.postgres, pytest.mark.slow]

KEYS = 30


class _Relay(OutboxRelay):
    """A relay that keeps its publisher at hand, to close it."""

    def __init__(self, store: SqlAlchemyEventStore, broker: BrokerNames, name: str) -> None:
        self.publisher = broker.publisher()
        super().__init__(
            store, self.publisher, batch_size=10, lease=1.0, poll_interval=0.05, relay_id=name
        )


def _out_of_order(arrivals: list[Entry], committed: list[Entry]) -> dict[str, list[int]]:
    """The keys whose first arrivals are not exactly 1, 2, ... in order, with them."""
    expected: dict[str, list[int]] = defaultdict(list)
    for key, n in committed:
        expected[key].append(n)
    found = first_arrivals(arrivals)
    return {key: found.get(key, []) for key in expected if found.get(key) != expected[key]}


async def test_each_keys_messages_arrive_in_order_through_several_relays(
    postgres_event_store: SqlAlchemyEventStore,
    effects: Table,
    broker: BrokerNames,
    tmp_path: Path,
) -> None:
    store = postgres_event_store
    assert store.tables.schema is not None
    contract = LedgerContract(sequenced_on(broker.topic))
    producer = Producer(store, contract, [f"ledger-{i:02}" for i in range(KEYS)], pace=0.005)
    relay_a, relay_b = _Relay(store, broker, "relay-a"), _Relay(store, broker, "relay-b")
    relay_c: RelayProcess
    a_running = anyio.CancelScope()

    async def run_a() -> None:
        with a_running:
            await relay_a.run()

    def all_published() -> bool:
        return min(relay_a.metrics.published, relay_b.metrics.published, relay_c.confirmed) > 0

    with anyio.fail_after(40):
        async with (
            consuming(store, effects, broker.source()) as consumer,
            relay_processes(store.tables.schema, broker, tmp_path) as relays,
            anyio.create_task_group() as group,
        ):
            relay_c = await relays.spawn("relay-c", "--lease", "1", "--delay", "0.01")
            await relay_c.printed("started")
            group.start_soon(run_a)
            group.start_soon(relay_b.run)
            while producer.commands < 3 * KEYS or not all_published():
                await producer.round()  # the lanes are shared out meanwhile
            a_running.cancel()  # relay a leaves: its lanes move to b and c
            await producer.rounds(2)
            await all_handled(store, effects, producer.committed)
            await all_recorded(store, producer.committed)
            group.cancel_scope.cancel()
    for relay in (relay_a, relay_b):
        await relay.publisher.close()

    committed = producer.committed
    rows = await assert_exactly_once(store, effects, committed)
    arrivals = consumer.source.entries()
    worker = consumer.worker
    line = report(
        "ordering", broker.kind, keys=KEYS, committed=len(committed),
        published_a=relay_a.metrics.published, published_b=relay_b.metrics.published,
        published_c=relay_c.confirmed, delivered=len(arrivals), handled=worker.handled,
        duplicates=worker.duplicates,
    )  # fmt: skip
    assert relay_a.metrics.published > 0, line
    assert relay_b.metrics.published > 0, line
    assert relay_c.confirmed > 0, line
    assert not (late := _out_of_order(arrivals, committed)), f"out of order: {late}; {line}"
    handled = [(key, n) for _, key, n in rows]  # in handling order
    assert not (late := _out_of_order(handled, committed)), f"handled out of order: {late}"
