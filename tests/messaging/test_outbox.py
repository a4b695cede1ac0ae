"""The outbox: messages commit with the events, and a relay publishes them in order."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from eventcore import (
    InMemoryBroker,
    InMemoryEventStore,
    MessageHeaders,
    OutboxRelay,
    SqlAlchemyEventStore,
    UnitOfWork,
    UnitOfWorkError,
    postgres_engine,
)
from eventcore._messaging._outbox import lane_of
from eventcore.testing.pytest_plugin import postgres_url
from tests.messaging._model import Section, SectionContract, StudentEnrolled

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> SqlAlchemyEventStore:
    """A SQL store (the outbox needs the events' transaction)."""
    name = {"sqlite": "sqlite_store", "postgres": "postgres_event_store"}[request.param]
    found: SqlAlchemyEventStore = request.getfixturevalue(name)
    return found


async def enrol(store: SqlAlchemyEventStore, section_id: str, *students: str) -> None:
    """Take a seat per student in one unit of work that publishes through the outbox."""
    async with UnitOfWork(store, mappings=[SectionContract()]) as uow:
        repository = uow.repository(Section)
        section = (
            await repository.get(section_id)
            if await store.stream_version(section_id)
            else Section(section_id)
        )
        if section.version == 0:
            await repository.add(section)
        for student in students:
            section.take_seat(student)
        await uow.commit()


async def test_messages_commit_with_the_events_and_are_published(
    store: SqlAlchemyEventStore,
) -> None:
    await enrol(store, "cs101", "s-1", "s-2")
    status = await store.outbox.status()
    assert (status.pending, status.sent, status.dead) == (2, 0, 0)
    assert status.oldest_pending_age is not None

    broker = InMemoryBroker()
    relay = OutboxRelay(store, broker)
    assert await relay.publish_pending() == 2

    assert [m.topic for m in broker.published] == ["tests.enrolments"] * 2
    first = broker.published[0]
    assert first.key == "cs101"
    assert first.type == "tests.StudentEnrolled"
    assert StudentEnrolled.model_validate_json(first.payload) == StudentEnrolled(
        student_id="s-1", section_id="cs101", seat=1
    )
    events = await store.read_stream("cs101")
    assert first.causation_id == str(events[0].event_id)
    assert first.all_headers()[MessageHeaders.MESSAGE_ID] == str(first.message_id)
    assert (await store.outbox.status()).sent == 2
    assert await relay.publish_pending() == 0  # nothing is published twice


async def test_a_rolled_back_unit_of_work_leaves_no_message(store: SqlAlchemyEventStore) -> None:
    async with UnitOfWork(store, mappings=[SectionContract()]) as uow:
        section = Section("cs102")
        await uow.repository(Section).add(section)
        section.take_seat("s-1")
    assert (await store.outbox.status()).pending == 0


async def test_retranslating_an_event_gives_the_same_message_id(
    store: SqlAlchemyEventStore,
) -> None:
    await enrol(store, "cs103", "s-1")
    recorded = (await store.read_stream("cs103"))[0]
    broker = InMemoryBroker()
    await OutboxRelay(store, broker).publish_pending()
    from eventcore._messaging._encoding import message_id_for

    event = SectionContract().translate(recorded)[0]
    assert message_id_for(recorded, event, 0) == broker.published[0].message_id


async def test_failures_back_off_and_keep_the_order_of_a_key(store: SqlAlchemyEventStore) -> None:
    await enrol(store, "cs104", "s-1", "s-2", "s-3")
    broker = InMemoryBroker()
    broker.failing.add("tests.enrolments")
    relay = OutboxRelay(store, broker, backoff=0.05, max_backoff=0.05)
    assert await relay.publish_pending() == 0
    status = await store.outbox.status()
    assert (status.pending, status.retrying) == (3, 3)
    broker.failing.clear()
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while len(broker.published) < 3 and datetime.now(UTC) < deadline:
        await relay.publish_pending()
    seats = [StudentEnrolled.model_validate_json(m.payload).seat for m in broker.published]
    assert seats == [1, 2, 3]


async def test_later_messages_of_a_key_wait_for_one_in_backoff(
    store: SqlAlchemyEventStore,
) -> None:
    await enrol(store, "cs105", "s-1")
    broker = InMemoryBroker()
    broker.failing.add("tests.enrolments")
    relay = OutboxRelay(store, broker, backoff=30, max_backoff=30)
    await relay.publish_pending()  # s-1 fails: backoff of 15 s or more
    broker.failing.clear()
    await enrol(store, "cs105", "s-2")
    await enrol(store, "other", "s-3")
    assert await relay.publish_pending() == 1  # only the other key's message
    assert [m.key for m in broker.published] == ["other"]


async def test_messages_die_after_max_attempts_and_can_be_redriven(
    store: SqlAlchemyEventStore,
) -> None:
    await enrol(store, "cs106", "s-1")
    broker = InMemoryBroker()
    broker.failing.add("tests.enrolments")
    relay = OutboxRelay(store, broker, max_attempts=2, backoff=0.01, max_backoff=0.01)
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while not (await store.outbox.status()).dead and datetime.now(UTC) < deadline:
        await relay.publish_pending()
    [dead] = await store.outbox.dead_letters()
    assert dead.attempts == 2
    assert "set to fail" in (dead.last_error or "")
    assert relay.metrics.dead == 1

    broker.failing.clear()
    assert await store.outbox.redrive([dead.message.message_id]) == 1
    assert await relay.publish_pending() == 1
    assert [m.message_id for m in broker.published] == [dead.message.message_id]


async def test_sent_messages_are_deleted_after_retention(store: SqlAlchemyEventStore) -> None:
    await enrol(store, "cs107", "s-1", "s-2")
    await OutboxRelay(store, InMemoryBroker(), retention=timedelta(0)).publish_pending()
    assert (await store.outbox.status()).sent == 2
    deleted = await store.outbox.delete_sent(datetime.now(UTC) + timedelta(seconds=1))
    assert deleted == 2
    assert (await store.outbox.status()).sent == 0


async def test_two_relays_share_the_lanes(store: SqlAlchemyEventStore) -> None:
    one = await store.outbox.claim_lanes("one", timedelta(seconds=30))
    assert len(one) == 32
    two = await store.outbox.claim_lanes("two", timedelta(seconds=30))
    assert two == []  # "one" has them all until it renews
    one = await store.outbox.claim_lanes("one", timedelta(seconds=30))
    two = await store.outbox.claim_lanes("two", timedelta(seconds=30))
    assert len(one) == len(two) == 16
    assert not set(one) & set(two)
    await store.outbox.release_lanes("one")
    two = await store.outbox.claim_lanes("two", timedelta(seconds=30))
    assert len(two) == 32


async def test_lanes_hash_keys_stably() -> None:
    assert lane_of("cs101") == lane_of("cs101")
    assert {lane_of(f"k{i}") for i in range(1000)} == set(range(32))


async def test_explicit_publish_and_purge(store: SqlAlchemyEventStore) -> None:
    async with UnitOfWork(store) as uow:
        message = uow.publish(StudentEnrolled(student_id="s-9", section_id="x", seat=1), key="x")
        await uow.commit()
    broker = InMemoryBroker()
    assert await OutboxRelay(store, broker).publish_pending() == 1
    assert broker.published[0].message_id == message.message_id
    assert await store.outbox.purge() == 1


async def test_an_in_memory_store_refuses_mappings() -> None:
    store = InMemoryEventStore()
    async with UnitOfWork(store, mappings=[SectionContract()]) as uow:
        section = Section(str(uuid.uuid4()))
        await uow.repository(Section).add(section)
        section.take_seat("s-1")
        with pytest.raises(UnitOfWorkError, match="no outbox"):
            await uow.commit()


@pytest.mark.postgres
async def test_a_publish_only_unit_of_work_wakes_other_processes_relays(
    postgres_event_store: SqlAlchemyEventStore,
) -> None:
    """No event is appended, yet the commit sends a `NOTIFY`: a relay in another process
    (here, a store with an engine of its own) wakes without waiting for its poll."""
    store = postgres_event_store
    engine = postgres_engine(postgres_url(), pool_size=2, max_overflow=0)
    other = SqlAlchemyEventStore(engine, tables=store.tables)
    try:
        async with other.watch() as signal:
            seen = signal.notified
            async with UnitOfWork(store) as uow:
                uow.publish(StudentEnrolled(student_id="s-1", section_id="x", seat=1), key="x")
                await uow.commit()
            assert await signal.wait(5, since=seen)
    finally:
        await other.close()
        await engine.dispose()
