"""Consumers: each message has one effect, however often it is delivered; poison dies."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from eventcore import (
    Consumer,
    ConsumerContext,
    ConsumerError,
    ConsumerWorker,
    DomainEvent,
    InMemoryBroker,
    InMemoryQueue,
    OutboxRelay,
    SqlAlchemyEventStore,
    handles,
    replay_dead_letters,
)
from tests.messaging._model import EnrolmentLog
from tests.messaging._wait import eventually
from tests.messaging.test_outbox import enrol

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> SqlAlchemyEventStore:
    """A SQL store (the inbox commits with the handler's writes)."""
    name = {"sqlite": "sqlite_store", "postgres": "postgres_event_store"}[request.param]
    found: SqlAlchemyEventStore = request.getfixturevalue(name)
    return found


@asynccontextmanager
async def running(worker: ConsumerWorker) -> AsyncIterator[None]:
    async with anyio.create_task_group() as group:
        group.start_soon(worker.run)
        yield
        group.cancel_scope.cancel()


async def published_to(store: SqlAlchemyEventStore) -> tuple[InMemoryBroker, InMemoryQueue]:
    broker = InMemoryBroker()
    queue = broker.queue("log", ["tests.*"])
    await enrol(store, "cs201", "s-1", "s-2", "s-3")
    await OutboxRelay(store, broker).publish_pending()
    return broker, queue


async def test_each_message_is_handled_once_despite_redelivery(
    store: SqlAlchemyEventStore,
) -> None:
    broker, queue = await published_to(store)
    for message in broker.published:  # the broker delivers everything twice
        queue.put(message, redelivered=True)
    consumer = EnrolmentLog()
    worker = ConsumerWorker(store, consumer, queue)
    async with running(worker):
        await eventually(lambda: worker.handled + worker.duplicates == 6)
    assert [e.student_id for e in consumer.seen] == ["s-1", "s-2", "s-3"]
    assert (worker.handled, worker.duplicates) == (3, 3)
    for message in broker.published:
        assert await store.inbox.handled(EnrolmentLog.name, message.message_id)


async def test_a_failing_message_is_retried_then_dead_lettered(
    store: SqlAlchemyEventStore,
) -> None:
    broker, queue = await published_to(store)
    consumer = EnrolmentLog()
    consumer.fail_for.add("s-2")
    worker = ConsumerWorker(store, consumer, queue, retry_delay=0.0)
    async with running(worker):
        await eventually(lambda: len(consumer.seen) == 2)
        await eventually(lambda: store.inbox.dead_letters(EnrolmentLog.name))
    [dead] = await store.inbox.dead_letters()
    assert dead.attempts == EnrolmentLog.max_attempts
    assert "cannot handle s-2" in dead.error
    assert dead.message.message_id == broker.published[1].message_id
    assert not await store.inbox.handled(EnrolmentLog.name, dead.message.message_id)
    assert await store.inbox.discard(EnrolmentLog.name, [dead.message.message_id]) == 1


async def test_an_undecodable_message_dies_at_once(store: SqlAlchemyEventStore) -> None:
    broker, queue = await published_to(store)
    bad = dataclasses.replace(
        broker.published[0], message_id=uuid.UUID(int=1),
        payload=b'{"student_id": 3}',
    )  # fmt: skip
    queue.put(bad)
    worker = ConsumerWorker(store, EnrolmentLog(), queue)
    async with running(worker):
        await eventually(lambda: store.inbox.dead_letters())
    [dead] = await store.inbox.dead_letters()
    assert dead.attempts == 1
    assert "does not fit StudentEnrolled" in dead.error
    assert "section_id" in dead.error


class Private(DomainEvent, type_name="tests.messaging.Private", registry=None):
    """A domain event: consumers cannot handle it."""

    x: int


class Wrong(Consumer):
    """Handles a domain event: refused."""

    @handles
    async def _on(self, event: Private, context: ConsumerContext) -> None:
        """Never runs."""


async def test_a_consumer_must_handle_integration_events() -> None:
    with pytest.raises(ConsumerError, match="IntegrationEvent subclass"):
        Wrong.handlers()


async def test_concurrent_failures_of_one_message_both_count(store: SqlAlchemyEventStore) -> None:
    broker, _ = await published_to(store)
    message = broker.published[0]

    async def fail() -> None:
        await store.inbox.record_failure("tests.concurrent", message, "boom", max_attempts=2)

    async with anyio.create_task_group() as group:
        group.start_soon(fail)
        group.start_soon(fail)
    [dead] = await store.inbox.dead_letters("tests.concurrent")
    assert dead.attempts == 2


async def test_discard_keeps_the_attempts_of_a_message_still_retried(
    store: SqlAlchemyEventStore,
) -> None:
    broker, _ = await published_to(store)
    message = broker.published[0]
    attempts, dead = await store.inbox.record_failure("tests.retried", message, "x", 3)
    assert (attempts, dead) == (1, False)
    assert await store.inbox.discard("tests.retried", [message.message_id]) == 0
    attempts, dead = await store.inbox.record_failure("tests.retried", message, "x", 3)
    assert (attempts, dead) == (2, False)


async def test_replaying_dead_letters_once_fixed_handles_them_once(
    store: SqlAlchemyEventStore,
) -> None:
    broker, queue = await published_to(store)
    consumer = EnrolmentLog()
    consumer.fail_for.update({"s-2", "s-3"})
    worker = ConsumerWorker(store, consumer, queue, retry_delay=0.0)

    async def both_dead() -> bool:
        return len(await store.inbox.dead_letters(EnrolmentLog.name)) == 2

    async with running(worker):
        await eventually(both_dead)
    s2, s3 = (m.message_id for m in broker.published[1:])

    consumer.fail_for = {"s-3"}  # s-2's cause is fixed, s-3's is not
    result = await replay_dead_letters(store, consumer)
    assert result.handled == [s2]
    assert list(result.failed) == [s3]
    assert "cannot handle s-3" in result.failed[s3]
    assert [e.student_id for e in consumer.seen] == ["s-1", "s-2"]
    [still] = await store.inbox.dead_letters(EnrolmentLog.name)
    assert still.message.message_id == s3
    assert still.attempts == EnrolmentLog.max_attempts + 1
    assert await store.inbox.handled(EnrolmentLog.name, s2)

    consumer.fail_for.clear()
    assert (await replay_dead_letters(store, consumer, [s2])).skipped == {}  # not dead now
    assert (await replay_dead_letters(store, consumer, [s3])).handled == [s3]
    assert await store.inbox.dead_letters() == []
    queue.put(broker.published[2], redelivered=True)  # a late redelivery: no second effect
    async with running(worker):
        await eventually(lambda: worker.duplicates == 1)
    assert [e.student_id for e in consumer.seen] == ["s-1", "s-2", "s-3"]
