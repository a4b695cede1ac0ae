"""A small term for the handler tests: courses, sections and students, through the front door.

The term and catalogue are made with registration's commands; the students come the
way they will in production: as the records context's integration events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from eventcore import IntegrationEvent, Message, message_for
from tests.examples.registration.builders import NOW
from university.records.contracts import (
    CourseCompleted,
    HoldLifted,
    HoldPlaced,
    StudentAdmitted,
    StudentChanged,
)
from university.registration import Registration
from university.registration.application.commands import (
    CatalogueCourse,
    OfferSection,
    ScheduleTerm,
)
from university.registration.domain.values import CreditLimits, Meeting, TimeTicket, Weekday

__all__ = [
    "CS101_01",
    "CS101_02",
    "CS201_01",
    "DAY",
    "MATH101_01",
    "MWF",
    "TERM",
    "TR",
    "Clock",
    "World",
    "weekly",
]

TERM = "2026FA"
CS101_01, CS101_02 = f"{TERM}-CS101-01", f"{TERM}-CS101-02"
CS201_01, MATH101_01 = f"{TERM}-CS201-01", f"{TERM}-MATH101-01"
DAY = timedelta(days=1)


@dataclass
class Clock:
    """A clock tests move by hand (`clock.now += DAY`)."""

    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


def weekly(days: tuple[Weekday, ...], starts: int, minutes: int = 50) -> Meeting:
    end = datetime.combine(date.min, time(starts)) + timedelta(minutes=minutes)
    """A meeting on `days` from `starts` o'clock, `minutes` long."""
    return Meeting(days=days, starts=time(starts), ends=end.time())


MWF = (Weekday.MO, Weekday.WE, Weekday.FR)
TR = (Weekday.TU, Weekday.TH)


@dataclass
class World:
    """The term `2026FA`: seniors (90+ credits) may register now, everyone else tomorrow.

    Sections: CS101-01 (MWF 9:00, 2 seats, waitlist 2), CS101-02 (TR 10:00, 30 seats),
    CS201-01 (MWF 11:00, needs CS101, 30 seats), MATH101-01 (MWF 9:00, 30 seats).
    Credit limit 12 for undergraduates; every course is 4 credits.
    """

    registration: Registration
    clock: Clock
    revisions: dict[str, int] = field(default_factory=dict)

    async def set_up(self) -> None:
        """Schedule the term and its catalogue."""
        now = self.clock.now
        await self.registration.schedule_term(
            ScheduleTerm(
                term_id=TERM,
                name="Fall",
                starts_on=date(2026, 9, 1),
                ends_on=date(2026, 12, 18),
                time_tickets=[
                    TimeTicket(group="seniors", opens_at=now - DAY, min_earned_credits=90),
                    TimeTicket(group="everyone", opens_at=now + DAY),
                ],
                add_deadline=now + 7 * DAY,
                drop_deadline=now + 14 * DAY,
                credit_limits=CreditLimits(undergraduate=12, graduate=9),
            )
        )
        await self.registration.catalogue_courses(
            [
                CatalogueCourse(course_id="CS101", title="Programming", department="CS", credits=4),
                CatalogueCourse(
                    course_id="CS201",
                    title="Data Structures",
                    department="CS",
                    credits=4,
                    prerequisites=[["CS101"]],
                ),
                CatalogueCourse(
                    course_id="MATH101", title="Calculus", department="MATH", credits=4
                ),
                CatalogueCourse(
                    course_id="PHYS101", title="Mechanics", department="PHYS", credits=4
                ),
            ]
        )
        await self.offer(CS101_01, "CS101", weekly(MWF, 9), capacity=2, waitlist=2)
        await self.offer(CS101_02, "CS101", weekly(TR, 10, 75), capacity=30)
        await self.offer(CS201_01, "CS201", weekly(MWF, 11), capacity=30)
        await self.offer(MATH101_01, "MATH101", weekly(MWF, 9), capacity=30)

    async def offer(
        self, section_id: str, course_id: str, meeting: Meeting, *, capacity: int, waitlist: int = 0
    ) -> None:
        """Offer one more section in the term."""
        await self.registration.offer_sections(
            [
                OfferSection(
                    section_id=section_id,
                    term_id=TERM,
                    course_id=course_id,
                    meetings=[meeting],
                    capacity=capacity,
                    waitlist_capacity=waitlist,
                )
            ]
        )

    async def admit(
        self,
        *students: str,
        credits: int = 95,
        level: str = "undergraduate",
        completed: tuple[str, ...] = (),
    ) -> None:
        """Tell registration (as records would) that `students` are admitted."""
        messages = []
        for student_id in students:
            changed = student_id in self.revisions
            revision = self.revisions[student_id] = self.revisions.get(student_id, 0) + 1
            kind = StudentChanged if changed else StudentAdmitted
            messages.append(
                self._message(
                    kind(
                        student_id=student_id,
                        level=level,
                        program="CS",
                        earned_credits=credits,
                        revision=revision,
                        occurred_at=self.clock.now,
                    )
                )
            )
            for course_id in completed:
                messages.append(
                    self._message(
                        CourseCompleted(
                            student_id=student_id,
                            course_id=course_id,
                            term_id="2026SP",
                            grade="B",
                            credits=4,
                            occurred_at=self.clock.now,
                        )
                    )
                )
        await self.registration.ingest_records(messages)

    async def hold(
        self, student_id: str, hold_id: str = "bursar-1", *, lifted: bool = False
    ) -> None:
        """Tell registration a registration hold was placed on the student (or lifted)."""
        event: IntegrationEvent
        if lifted:
            event = HoldLifted(hold_id=hold_id, student_id=student_id, occurred_at=self.clock.now)
        else:
            event = HoldPlaced(
                hold_id=hold_id,
                student_id=student_id,
                hold_type="bursar",
                blocks=("registration",),
                starts_on=self.clock.now.date() - DAY,
                reason="unpaid tuition",
                occurred_at=self.clock.now,
            )
        await self.registration.ingest_records([self._message(event)])

    @staticmethod
    def _message(event: IntegrationEvent) -> Message:
        return message_for(event, key=str(getattr(event, "student_id", "")))
