"""`WaitlistPromotion`: a freed seat goes to the first waitlisted student who still qualifies.

A process manager, run by a `ProcessManagerWorker` from the log. When a section's seat
is released, or its capacity grows, it takes the head of the line, asks that student's
schedule to decide again *now* (window, holds, prerequisites, time conflicts, credit
limit: the student may have registered elsewhere meanwhile), and either seats them or
skips them (`WaitlistSkipped`, with the reason: the student is told why through the
published contract), then goes on down the line while seats are free.

The worker takes the turns of each batch's sections in the process first (`sections_of`,
with the command handlers' `StreamGate`), so on a busy section a promotion waits for
the commands queued before it instead of racing them. Each batch is one transaction: the
section's and the schedules' events and the worker's checkpoint commit together, each
stream at its loaded version, so a promotion that still races a command (from another
process) conflicts and is retried on the new state, and a crash mid-batch promotes
nobody twice. It keeps no state of its own (the section's stream is its state), so its
instances record nothing.

Its events carry the correlation id of the request that freed the seat, and the actor
`ACTOR`: the audit trail shows the drop and the promotion it caused as one conversation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from eventcore import ProcessContext, ProcessManager, RecordedEvent, message_context, reacts
from university.registration.application.concurrency import StreamGate
from university.registration.application.ports import Clock, StudentDirectory
from university.registration.domain.course import Course
from university.registration.domain.events import CapacityChanged, SeatReleased
from university.registration.domain.requests import AddRequest, Enrolled
from university.registration.domain.schedule import Schedule
from university.registration.domain.section import Section
from university.registration.domain.term import Term

__all__ = ["ACTOR", "WaitlistPromotion", "Wiring", "sections_of", "waitlist_promotion"]

ACTOR = "registration.waitlist"
"""The actor of the events the waitlist process records."""


@dataclass(frozen=True)
class Wiring:
    """What the process needs besides its events."""

    directory: StudentDirectory
    clock: Clock
    gate: StreamGate
    """Only its database lock is used: a section's commands in other processes wait for
    the promotions (the in-process turns are the command handlers')."""


class WaitlistPromotion(ProcessManager, name="registration.waitlist"):
    """One instance per section; its dependencies are class attributes, set by
    `waitlist_promotion()` (the worker makes the instances)."""

    wiring: ClassVar[Wiring]

    @classmethod
    def process_id_of(cls, recorded: RecordedEvent) -> str | None:
        """The section whose seats changed."""
        event = recorded.event
        if isinstance(event, SeatReleased | CapacityChanged):
            return event.section_id
        return None

    @reacts
    async def _seat_released(self, event: SeatReleased, context: ProcessContext) -> None:
        await self._fill(event.section_id, context)

    @reacts
    async def _capacity_changed(self, event: CapacityChanged, context: ProcessContext) -> None:
        await self._fill(event.section_id, context)

    async def _fill(self, section_id: str, context: ProcessContext) -> None:
        """Seat the head of the line, or skip them, while a seat is free and someone waits."""
        stream = Section.stream_id(section_id)
        await self.wiring.gate.lock(context.connection, [stream])
        section = await context.repository(Section).get(stream)
        if section.next_in_line is None:
            return  # nobody waits, or the seat was taken meanwhile (a batch seen before)
        term = await context.repository(Term).get(Term.stream_id(section.term_id))
        course = await context.repository(Course).get(Course.stream_id(section.course_id))
        schedules = context.repository(Schedule)
        with message_context(context.recorded.event_id, actor=ACTOR):
            while (student_id := section.next_in_line) is not None:
                stream = Schedule.stream_id(section.term_id, student_id)
                schedule = await schedules.get(stream)
                student = await self.wiring.directory.record_of(context.connection, student_id)
                now = self.wiring.clock()
                request = AddRequest.of(term, course, section, student_id, student, now)
                if isinstance(schedule.promote(request), Enrolled):
                    section.promote(student_id)
                else:
                    section.skip(student_id)


def sections_of(batch: Sequence[RecordedEvent]) -> list[str]:
    """The streams of the sections whose seats a batch of the process changes."""
    return [
        Section.stream_id(r.event.section_id)
        for r in batch
        if isinstance(r.event, SeatReleased | CapacityChanged)
    ]


def waitlist_promotion(
    directory: StudentDirectory, clock: Clock, gate: StreamGate
) -> type[WaitlistPromotion]:
    """`WaitlistPromotion` wired to a directory, a clock and a gate, for one context's worker."""

    class Wired(WaitlistPromotion, name=WaitlistPromotion.name):
        wiring = Wiring(directory, clock, gate)

    return Wired
