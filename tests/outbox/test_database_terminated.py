"""The relay's database connections terminated (`pg_terminate_backend`) in the middle of
its batches, again and again: it recovers, and nothing is lost or applied twice."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import anyio
import pytest
from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncEngine

from eventcore import (
    EventStoreTables,
    Message,
    OutboxRelay,
    Publisher,
    PublishResult,
    SqlAlchemyEventStore,
    postgres_engine,
)
from eventcore.testing.pytest_plugin import postgres_url
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
from tests.outbox._model import LedgerContract, new_suffix, sequenced_on

pytestmark = [pytest.mark.anyio, pytest.mark.postgres, pytest.mark.slow]

TERMINATIONS = 5


class TerminatingPublisher:
    """Terminates the relay's database sessions inside every `every`-th batch, after it
    was claimed and before it is published (so its settle finds the connections gone),
    `times` times in all."""

    def __init__(
        self, inner: Publisher, engine: AsyncEngine, application: str, every: int, times: int
    ) -> None:
        self._inner = inner
        self._engine = engine  # not the relay's: the test's own
        self._application = application
        self._every = every
        self._times = times
        self.batches = 0
        self.terminated: list[int] = []  # sessions ended, per termination

    async def publish(self, messages: Sequence[Message]) -> PublishResult:
        """Publish through the inner publisher, terminating first when it is time."""
        self.batches += 1
        if self.batches % self._every == 0 and len(self.terminated) < self._times:
            self.terminated.append(await self._terminate())
        return await self._inner.publish(messages)

    async def _terminate(self) -> int:
        query = text(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) "
            "FROM pg_stat_activity WHERE application_name = :name"
        )
        async with self._engine.connect() as conn:
            ended = await conn.scalar(query, {"name": self._application})
        return int(ended or 0)

    async def close(self) -> None:
        """Close the inner publisher."""
        await self._inner.close()


async def test_a_relay_whose_database_sessions_are_terminated_recovers_and_loses_nothing(
    postgres_event_store: SqlAlchemyEventStore,
    effects: Table,
    broker: BrokerNames,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = postgres_event_store
    application = f"ec_outbox_relay_{new_suffix()}"
    engine = postgres_engine(
        postgres_url(), pool_size=2, max_overflow=2,
        connect_args={"server_settings": {"application_name": application}},
    )  # fmt: skip
    relay_store = SqlAlchemyEventStore(engine, tables=EventStoreTables(schema=store.tables.schema))
    contract = LedgerContract(sequenced_on(broker.topic))
    producer = Producer(store, contract, [f"ledger-{i}" for i in range(8)], pace=0.02)
    publisher = TerminatingPublisher(
        broker.publisher(), store.engine, application, every=2, times=TERMINATIONS
    )
    relay = OutboxRelay(relay_store, publisher, batch_size=10, lease=1.0, poll_interval=0.05)
    caplog.set_level(logging.WARNING, logger="eventcore.outbox")
    try:
        with anyio.fail_after(40):
            async with (
                consuming(store, effects, broker.source()) as consumer,
                anyio.create_task_group() as group,
            ):
                group.start_soon(relay.run)
                while len(publisher.terminated) < TERMINATIONS:
                    await producer.round()
                await producer.round()  # and some more once the terminations are over
                await all_handled(store, effects, producer.committed)
                await all_recorded(store, producer.committed)
                group.cancel_scope.cancel()
    finally:
        await publisher.close()
        await engine.dispose()

    committed = producer.committed
    await assert_exactly_once(store, effects, committed)
    errors = [r for r in caplog.records if "database error" in r.getMessage()]
    worker = consumer.worker
    line = report(
        "database sessions terminated", broker.kind, terminations=len(publisher.terminated),
        sessions_ended=sum(publisher.terminated), relay_database_errors=len(errors),
        committed=len(committed), published=relay.metrics.published,
        delivered=len(consumer.source.arrivals), handled=worker.handled,
        duplicates=worker.duplicates,
    )  # fmt: skip
    assert all(n > 0 for n in publisher.terminated), line  # each found the relay's sessions
    # The relay met the dead connections; its claims and settlements run again on fresh
    # ones, so it may log no database error at all.
    assert relay.metrics.published >= len(committed) == worker.handled, line
    for key, numbers in first_arrivals(consumer.source.entries()).items():
        assert numbers == sorted(numbers), f"{key} arrived out of order: {numbers}"
