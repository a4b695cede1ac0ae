"""Registration's view of the students, learnt from the records context's events.

This module is registration's anti-corruption layer on the way in: it reads records'
public contracts (`university.records.contracts`) and nothing else of records, and
turns them into registration's own language (`StudentRecord`, `Hold`) in the student
directory. Registration never calls records: what it knows is what it was told.

Two ways in, with the same effect: `StudentRecordsConsumer`, one message per
transaction through the inbox (a `ConsumerWorker` feeds it from the broker), and
`ingest`, many messages in one transaction (a start-up load), each recorded in the same
inbox so that a message delivered both ways has one effect.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from eventcore import Consumer, ConsumerContext, IntegrationEvent, Message, decode_event, handles
from university.records.contracts import (
    CourseCompleted,
    HoldLifted,
    HoldPlaced,
    StudentAdmitted,
    StudentChanged,
)
from university.registration.application.ports import (
    AdmittedStudent,
    CompletedCourse,
    LiftedHold,
    PlacedHold,
    StudentDirectory,
)
from university.registration.domain.values import Hold, Level

__all__ = ["BulkInbox", "StudentRecordsConsumer", "ingest"]

_GRADUATE_LEVELS = {"graduate", "masters", "doctoral", "postgraduate"}


class BulkInbox(Protocol):
    """The inbox, many messages at a time (on the caller's transaction)."""

    async def unseen(
        self, connection: AsyncConnection, consumer: str, message_ids: Sequence[uuid.UUID]
    ) -> set[uuid.UUID]:
        """Which of `message_ids` `consumer` has not handled."""
        ...

    async def record_many(
        self, connection: AsyncConnection, consumer: str, message_ids: Sequence[uuid.UUID]
    ) -> None:
        """Record `message_ids` (none handled before) as handled by `consumer`."""
        ...


class StudentRecordsConsumer(Consumer, name="registration.student-records"):
    """Keeps the student directory from records' contracts, one message at a time."""

    def __init__(self, directory: StudentDirectory) -> None:
        self.directory = directory

    @classmethod
    def topics(cls) -> tuple[str, ...]:
        """The topics of the contracts handled: what to subscribe to."""
        return tuple(sorted({event.integration_topic for event, _ in cls.handlers().values()}))

    @handles
    async def _admitted(self, event: StudentAdmitted, context: ConsumerContext) -> None:
        await self.directory.admit(context.connection, [_standing(event)])

    @handles
    async def _changed(self, event: StudentChanged, context: ConsumerContext) -> None:
        await self.directory.admit(context.connection, [_standing(event)])

    @handles
    async def _hold_placed(self, event: HoldPlaced, context: ConsumerContext) -> None:
        await self.directory.place_holds(context.connection, [_hold(event)])

    @handles
    async def _hold_lifted(self, event: HoldLifted, context: ConsumerContext) -> None:
        await self.directory.lift_holds(context.connection, [_lifted(event)])

    @handles
    async def _completed(self, event: CourseCompleted, context: ConsumerContext) -> None:
        await self.directory.complete_courses(context.connection, [_completion(event)])


async def ingest(
    connection: AsyncConnection,
    messages: Sequence[Message],
    directory: StudentDirectory,
    inbox: BulkInbox,
) -> int:
    """Handle `messages` on `connection`'s transaction; return how many were new.

    Messages the consumer handled before (through the broker or an earlier load) are
    skipped; the others are recorded in the inbox, and their effects written with one
    statement per kind. Types the consumer does not handle are ignored.
    """
    handlers = StudentRecordsConsumer.handlers()
    name = StudentRecordsConsumer.name
    known = [m for m in messages if m.type in handlers]
    unseen = await inbox.unseen(connection, name, [m.message_id for m in known])
    fresh = [m for m in known if m.message_id in unseen]
    events = [decode_event(m, handlers[m.type][0]) for m in fresh]
    await directory.admit(connection, [_standing(e) for e in events if _is_standing(e)])
    await directory.place_holds(connection, [_hold(e) for e in events if isinstance(e, HoldPlaced)])
    await directory.lift_holds(
        connection, [_lifted(e) for e in events if isinstance(e, HoldLifted)]
    )
    completed = [_completion(e) for e in events if isinstance(e, CourseCompleted)]
    await directory.complete_courses(connection, completed)
    await inbox.record_many(connection, name, [m.message_id for m in fresh])
    return len(fresh)


def _is_standing(event: IntegrationEvent) -> bool:
    return isinstance(event, StudentAdmitted | StudentChanged)


def _standing(event: IntegrationEvent) -> AdmittedStudent:
    assert isinstance(event, StudentAdmitted | StudentChanged)
    level = Level.GRADUATE if event.level.lower() in _GRADUATE_LEVELS else Level.UNDERGRADUATE
    return AdmittedStudent(event.student_id, level, event.earned_credits, event.revision)


def _hold(event: HoldPlaced) -> PlacedHold:
    hold = Hold(
        hold_id=event.hold_id,
        hold_type=event.hold_type,
        blocks_registration="registration" in event.blocks,
        starts_on=event.starts_on,
        ends_on=event.ends_on,
        reason=event.reason,
    )
    return PlacedHold(event.student_id, hold)


def _lifted(event: HoldLifted) -> LiftedHold:
    return LiftedHold(event.student_id, event.hold_id)


def _completion(event: CourseCompleted) -> CompletedCourse:
    return CompletedCourse(event.student_id, event.course_id, event.term_id, event.grade)
