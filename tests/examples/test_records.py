"""The records context, fed by registration's contracts through outbox, broker and inbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from sqlalchemy import inspect, text

from eventcore import InMemoryBroker, InMemoryQueue, MessageHeaders
from eventcore.testing.pytest_plugin import reachable_postgres_engine, throwaway_schema
from tests.examples.registration.world import MWF, TERM, Clock, World, weekly
from tests.messaging._wait import eventually
from university import records as records_context
from university import registration as registration_context
from university.records import Records
from university.records.domain.enrolment import Enrolment, Standing
from university.registration import Registration
from university.registration.application.commands import (
    CatalogueCourse,
    DropSection,
    RegisterForSection,
)
from university.registration.contracts import TOPIC, StudentEnrolled, StudentWithdrew

pytestmark = pytest.mark.anyio

SECTION = f"{TERM}-REC101-01"

Contexts = tuple[Registration, Records]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def contexts(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Contexts]:
    """Both contexts on one temporary SQLite file, then in one throwaway PG schema."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'university.db'}"
        async with (
            await registration_context.bootstrap(url, clock=Clock()) as registration,
            await records_context.bootstrap(url) as records,
        ):
            yield registration, records
        return
    engine = await reachable_postgres_engine()
    schema = throwaway_schema()
    try:
        registration = await registration_context.bootstrap(engine, schema=schema, clock=Clock())
        yield registration, await records_context.bootstrap(engine, schema=schema)
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()


async def enrol_and_swap(registration: Registration) -> None:
    """ada, bob and cy take the three seats; bob drops and dan takes his seat."""
    world = World(registration, Clock())
    await world.set_up()
    await registration.catalogue_courses(
        [CatalogueCourse(course_id="REC101", title="Records", department="REC", credits=3)]
    )
    await world.offer(SECTION, "REC101", weekly(MWF, 14), capacity=3)
    await world.admit("ada", "bob", "cy", "dan")
    for student in ("ada", "bob", "cy"):
        await registration.register(RegisterForSection(TERM, student, SECTION))
    await registration.drop(DropSection(TERM, "bob", SECTION))
    await registration.register(RegisterForSection(TERM, "dan", SECTION, correlation_id="swap"))


async def published(
    registration: Registration, records: Records
) -> tuple[InMemoryBroker, InMemoryQueue]:
    """Registration's outbox, published to an in-memory queue records subscribes to."""
    broker = InMemoryBroker()
    queue = broker.queue(records.subscription.name, records.subscription.topics)
    assert await registration.relay(broker).publish_pending() == len(broker.published)
    return broker, queue


async def consume(records: Records, queue: InMemoryQueue, deliveries: int) -> tuple[int, int]:
    """Run records' worker until it has seen `deliveries`; return (handled, duplicates)."""
    worker = records.worker(queue)
    async with anyio.create_task_group() as group:
        group.start_soon(worker.run)
        await eventually(lambda: worker.handled + worker.duplicates == deliveries, seconds=10)
        group.cancel_scope.cancel()
    return worker.handled, worker.duplicates


async def test_records_keeps_exactly_the_enrolments_registration_committed(
    contexts: Contexts,
) -> None:
    registration, records = contexts
    await enrol_and_swap(registration)
    _, queue = await published(registration, records)

    assert await consume(records, queue, 5) == (5, 0)

    section = await registration.queries.section_as_of(SECTION)
    assert await records.class_list(SECTION) == list(section.enrolled) == ["ada", "cy", "dan"]
    [bob] = await records.enrolments_of("bob")
    assert (bob.section_id, bob.standing, bob.sequence) == (SECTION, Standing.WITHDRAWN, 5)
    assert not bob.is_enrolled
    assert await records.enrolments_of("nobody") == []


async def test_registration_publishes_its_contracts_not_its_domain_events(
    contexts: Contexts,
) -> None:
    registration, records = contexts
    await enrol_and_swap(registration)
    broker, _ = await published(registration, records)

    types = [m.type for m in broker.published]
    assert types == ["registration.StudentEnrolled"] * 3 + [
        "registration.StudentWithdrew",
        "registration.StudentEnrolled",
    ]  # the catalogue stays private; one section's messages keep their order
    assert {(m.topic, m.key) for m in broker.published} == {(TOPIC, SECTION)}
    withdrew = StudentWithdrew.model_validate_json(broker.published[3].payload)
    assert (withdrew.student_id, withdrew.section_id, withdrew.sequence) == ("bob", SECTION, 5)
    dan = broker.published[4]
    assert StudentEnrolled.model_validate_json(dan.payload).sequence == 6
    assert dan.headers[MessageHeaders.CORRELATION_ID] == "swap"


async def test_a_redelivered_message_has_no_second_effect(contexts: Contexts) -> None:
    registration, records = contexts
    await enrol_and_swap(registration)
    broker, queue = await published(registration, records)
    for message in broker.published:  # the broker delivers every message twice
        queue.put(message, redelivered=True)

    assert await consume(records, queue, 10) == (5, 5)

    assert await records.class_list(SECTION) == ["ada", "cy", "dan"]
    for message in broker.published:
        assert await records.store.inbox.handled(records.consumer.name, message.message_id)


async def test_a_late_older_change_does_not_undo_a_newer_one(contexts: Contexts) -> None:
    registration, records = contexts
    await enrol_and_swap(registration)
    broker, _ = await published(registration, records)
    reordered = InMemoryBroker().queue("reordered")
    bob_enrolled, bob_withdrew = broker.published[1], broker.published[3]
    for message in (bob_withdrew, bob_enrolled):  # e.g. a retried message sent to the back
        reordered.put(message)

    assert await consume(records, reordered, 2) == (2, 0)

    [bob] = await records.enrolments_of("bob")
    assert (bob.standing, bob.sequence) == (Standing.WITHDRAWN, 5)


async def test_records_owns_its_prefixed_tables(contexts: Contexts) -> None:
    _, records = contexts
    store = records.store
    async with store.engine.connect() as conn:
        names = await conn.run_sync(
            lambda sync: set(inspect(sync).get_table_names(schema=store.tables.schema))
        )
    assert {"records_enrolments", "records_inbox", "records_inbox_failures"} <= names
    assert records.subscription.topics == (TOPIC,)


def test_only_a_newer_change_supersedes_the_one_kept() -> None:
    def change(standing: Standing, sequence: int) -> Enrolment:
        return Enrolment("ada", SECTION, standing, sequence, datetime.now(UTC))

    kept = change(Standing.ENROLLED, 2)
    assert change(Standing.WITHDRAWN, 3).supersedes(kept)
    assert not change(Standing.WITHDRAWN, 2).supersedes(kept)
    assert not change(Standing.ENROLLED, 1).supersedes(kept)
    assert change(Standing.ENROLLED, 1).supersedes(None)
