"""Registration learns its students from records' integration events, through its inbox."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime

import anyio
import pytest

from eventcore import InMemoryBroker, Message, message_for
from tests.examples.registration.world import World
from tests.messaging._wait import eventually
from university.records.contracts import (
    TOPICS,
    CourseCompleted,
    HoldLifted,
    HoldPlaced,
    StudentAdmitted,
    StudentChanged,
)
from university.registration import Registration
from university.registration.domain.values import Level, StudentRecord

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 8, 20, tzinfo=UTC)


def admitted(revision: int = 1, credits: int = 30, level: str = "undergraduate") -> Message:
    kind = StudentAdmitted if revision == 1 else StudentChanged
    event = kind(
        student_id="ada",
        level=level,
        program="CS",
        earned_credits=credits,
        revision=revision,
        occurred_at=NOW,
    )
    return message_for(event, key="ada")


def placed(hold_id: str = "h1", blocks: tuple[str, ...] = ("registration",)) -> Message:
    event = HoldPlaced(
        hold_id=hold_id,
        student_id="ada",
        hold_type="bursar",
        blocks=blocks,
        starts_on=date(2026, 8, 1),
        reason="unpaid",
        occurred_at=NOW,
    )
    return message_for(event, key="ada")


def lifted(hold_id: str = "h1") -> Message:
    return message_for(HoldLifted(hold_id=hold_id, student_id="ada", occurred_at=NOW), key="ada")


def completed(course_id: str) -> Message:
    event = CourseCompleted(
        student_id="ada",
        course_id=course_id,
        term_id="2026SP",
        grade="A",
        credits=4,
        occurred_at=NOW,
    )
    return message_for(event, key="ada")


async def deliver(registration: Registration, *messages: Message, redeliver: bool = False) -> int:
    """Feed `messages` (each twice if `redeliver`) to the consumer; return how many it handled."""
    queue = InMemoryBroker().queue(registration.subscription.name)
    for message in messages:
        queue.put(message)
        if redeliver:
            queue.put(message, redelivered=True)
    worker = registration.records_worker(queue)
    expected = len(messages) * (2 if redeliver else 1)
    async with anyio.create_task_group() as group:
        group.start_soon(worker.run)
        await eventually(lambda: worker.handled + worker.duplicates == expected, seconds=10)
        group.cancel_scope.cancel()
    return worker.handled


async def record(registration: Registration) -> StudentRecord:
    async with registration.store.engine.connect() as conn:
        found = await registration.directory.record_of(conn, "ada")
    assert found is not None
    return found


async def test_the_consumer_builds_the_students_record(world: World) -> None:
    registration = world.registration
    messages = [admitted(), placed(), placed("h2", ("transcript",)), completed("CS101")]
    assert await deliver(registration, *messages, redeliver=True) == 4

    ada = await record(registration)
    assert (ada.level, ada.earned_credits) == (Level.UNDERGRADUATE, 30)
    assert {h.hold_id: h.blocks_registration for h in ada.holds} == {"h1": True, "h2": False}
    assert ada.completed_courses == {"CS101"}


async def test_a_late_older_change_does_not_undo_a_newer_one(world: World) -> None:
    registration = world.registration
    await deliver(registration, admitted(3, credits=95, level="graduate"), admitted(2, credits=60))
    ada = await record(registration)
    assert (ada.level, ada.earned_credits) == (Level.GRADUATE, 95)


async def test_a_hold_lifted_before_it_is_heard_of_stays_lifted(world: World) -> None:
    registration = world.registration
    await deliver(registration, admitted(), lifted(), placed())
    assert (await record(registration)).holds == ()


async def test_bulk_and_broker_deliveries_of_one_message_have_one_effect(world: World) -> None:
    registration = world.registration
    messages = [admitted(), completed("CS101"), completed("MATH101")]
    assert await registration.ingest_records(messages) == 3
    assert await registration.ingest_records(messages) == 0
    assert await deliver(registration, *messages) == 0  # the inbox has them all
    other = replace(messages[0], type="records.SomethingElse", message_id=uuid.uuid4())
    assert await registration.ingest_records([other]) == 0  # not a contract registration reads
    assert (await record(registration)).completed_courses == {"CS101", "MATH101"}


def test_registration_subscribes_to_every_records_topic() -> None:
    assert set(Registration.subscription.topics) == set(TOPICS)
    assert Registration.subscription.name == "registration.student-records"
