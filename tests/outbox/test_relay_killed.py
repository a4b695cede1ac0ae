"""A relay process SIGKILLed inside a batch, again and again, while commands keep
committing: its lanes and claimed messages pass to the next relay, and nothing is lost."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from sqlalchemy import Table, func, select

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
from tests.outbox._model import LedgerContract, sequenced_on
from tests.outbox._processes import RelayProcess, relay_processes

pytestmark = [pytest.mark.anyio, pytest.mark.postgres, pytest.mark.slow]

KILLS = 5
# Each batch of ten sleeps this long before and after publishing: a kill soon after a
# batch starts lands before the publish (claimed, not sent) or between the broker's
# confirms and the settle (published, not yet marked sent).
DELAY = 0.05
KILL_OFFSETS = (0.0, 0.03, 0.06)


async def _kill_inside_a_batch(
    store: SqlAlchemyEventStore, relay: RelayProcess, number: int
) -> int:
    """Let `relay` publish a batch, then SIGKILL it inside the next one; return how many
    messages it left claimed and unsettled (the batch it died in)."""
    confirmed = await relay.printed("confirmed")  # it owns lanes and publishes
    await relay.printed("batch", after=confirmed + 1)
    await anyio.sleep(KILL_OFFSETS[number % len(KILL_OFFSETS)])
    await relay.kill()
    outbox = store.tables.outbox
    query = select(func.count()).where(
        outbox.c.claimed_by == relay.name, outbox.c.sent_at.is_(None)
    )
    async with store.engine.connect() as conn:
        return int(await conn.scalar(query) or 0)


async def test_a_relay_killed_mid_batch_again_and_again_loses_nothing(
    postgres_event_store: SqlAlchemyEventStore,
    effects: Table,
    broker: BrokerNames,
    tmp_path: Path,
) -> None:
    store = postgres_event_store
    assert store.tables.schema is not None
    contract = LedgerContract(sequenced_on(broker.topic))
    producer = Producer(store, contract, [f"ledger-{i}" for i in range(10)], pace=0.03)
    publisher = broker.publisher()
    final = OutboxRelay(store, publisher, batch_size=50, lease=1.0, poll_interval=0.05)
    options = ("--lease", "1", "--batch-size", "10", "--delay", str(DELAY))
    killed: list[RelayProcess] = []
    in_flight: list[int] = []  # messages each killed relay left claimed, unsettled
    producing = True
    produced = anyio.Event()

    async def produce() -> None:
        while producing:
            await producer.round()
        produced.set()

    with anyio.fail_after(45):
        async with (
            consuming(store, effects, broker.source()) as consumer,
            relay_processes(store.tables.schema, broker, tmp_path) as relays,
            anyio.create_task_group() as group,
        ):
            group.start_soon(produce)
            for number in range(KILLS):
                relay = await relays.spawn(f"doomed-{number}", *options)
                in_flight.append(await _kill_inside_a_batch(store, relay, number))
                killed.append(relay)
            producing = False
            await produced.wait()  # the round under way is committed
            group.start_soon(final.run)
            await all_handled(store, effects, producer.committed)
            await all_recorded(store, producer.committed)
            group.cancel_scope.cancel()
    await publisher.close()

    committed = producer.committed
    await assert_exactly_once(store, effects, committed)
    published = sum(r.confirmed for r in killed) + final.metrics.published
    worker = consumer.worker
    line = report(
        "relay SIGKILLed", broker.kind, kills=len(killed), in_flight_at_kill=in_flight,
        committed=len(committed), published=published, by_killed=[r.confirmed for r in killed],
        by_final=final.metrics.published, delivered=len(consumer.source.arrivals),
        handled=worker.handled, duplicates=worker.duplicates,
    )  # fmt: skip
    assert all(r.confirmed > 0 for r in killed), line  # each published before it died
    assert all(n > 0 for n in in_flight), line  # and died inside a batch
    assert final.metrics.published > 0, line  # and left messages behind
    assert published >= len(committed) == worker.handled, line
    for key, numbers in first_arrivals(consumer.source.entries()).items():
        assert numbers == sorted(numbers), f"{key} arrived out of order: {numbers}"
