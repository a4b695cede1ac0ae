"""What a schedule decides on, and what it decides.

A registration decision spans two aggregates: the section (is a seat free, or room on
its waitlist?) and the student's schedule (limits, conflicts, eligibility). The section
answers with a `Placement`; the facts from elsewhere (the term's window and credit
limit, the course's prerequisites, what records says of the student) come with it in an
`AddRequest`; the schedule decides and records the outcome: `Enrolled`, `Waitlisted` or
`Refused`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from university.registration.domain.course import Course
from university.registration.domain.reasons import RefusalReason
from university.registration.domain.section import Offering, Placement, Section
from university.registration.domain.term import RegistrationWindow, Term
from university.registration.domain.values import Level, Prerequisites, StudentRecord

__all__ = [
    "AddRequest",
    "Dropped",
    "Enrolled",
    "Outcome",
    "Refused",
    "Swapped",
    "Waitlisted",
]


@dataclass(frozen=True)
class AddRequest:
    """Everything a schedule decides an add (a registration, a swap, a promotion) on.

    `student`, `window` and `credit_limit` are `None` when registration has not heard
    of the student: such a request is refused.
    """

    offering: Offering
    placement: Placement
    waitlist_position: int
    """Where the student would join the waitlist (1: next in line)."""
    student: StudentRecord | None
    window: RegistrationWindow | None
    credit_limit: int | None
    missing_prerequisites: Prerequisites
    restricted_to: Level | None
    at: datetime

    @classmethod
    def of(
        cls,
        term: Term,
        course: Course,
        section: Section,
        student_id: str,
        student: StudentRecord | None,
        at: datetime,
    ) -> AddRequest:
        """The request of `student_id` (known to registration as `student`) for `section`."""
        return cls(
            offering=section.offering,
            placement=section.placement_for(student_id),
            waitlist_position=len(section.waitlist) + 1,
            student=student,
            window=None if student is None else term.window_for(student),
            credit_limit=None if student is None else term.credit_limit_for(student),
            missing_prerequisites=() if student is None else course.missing_for(student),
            restricted_to=course.restricted_to,
            at=at,
        )


@dataclass(frozen=True)
class Enrolled:
    """The student got a seat."""

    section_id: str


@dataclass(frozen=True)
class Waitlisted:
    """The student is on the waitlist, at `position` (1: next in line)."""

    section_id: str
    position: int


@dataclass(frozen=True)
class Dropped:
    """The student gave up their seat (or, if `was_waitlisted`, their place in line)."""

    section_id: str
    was_waitlisted: bool = False


@dataclass(frozen=True)
class Swapped:
    """The student gave up their seat in `dropped` for one in `added`, in one decision."""

    dropped: str
    added: str


@dataclass(frozen=True)
class Refused:
    """The request was refused (and the refusal recorded), for `reason`."""

    section_id: str
    reason: RefusalReason


Outcome = Enrolled | Waitlisted | Dropped | Swapped | Refused
"""What a schedule decided."""
