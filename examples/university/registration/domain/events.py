"""What happened in registration, in the past tense. Stored forever: change with care.

Each event's `type_name` is what the store keeps, prefixed with the context's name. The
events of a section's stream change its seats and waitlist; those of a student's
schedule stream record every request the student made (refusals included), so the
audit trail of an attempt never writes to the busy section stream.
"""

from __future__ import annotations

from datetime import date, datetime

from eventcore import DomainEvent
from university.registration.domain.reasons import Action, RefusalReason
from university.registration.domain.values import (
    CreditLimits,
    Level,
    Meeting,
    Prerequisites,
    TimeTicket,
)

__all__ = [
    "CapacityChanged",
    "CourseCatalogued",
    "RequestRefused",
    "ScheduleOpened",
    "SeatReleased",
    "SeatTaken",
    "SectionAdded",
    "SectionDropped",
    "SectionOffered",
    "SectionWaitlisted",
    "StudentLeftWaitlist",
    "StudentWaitlisted",
    "TermScheduled",
    "WaitlistSkipped",
    "WaitlistWithdrawn",
]

# -- the term and the catalogue -----------------------------------------------------------


class TermScheduled(DomainEvent, type_name="registration.TermScheduled"):
    """A term was set up for registration: its time tickets, deadlines and credit limits."""

    term_id: str
    name: str
    starts_on: date
    ends_on: date
    time_tickets: tuple[TimeTicket, ...]
    add_deadline: datetime
    drop_deadline: datetime
    credit_limits: CreditLimits


class CourseCatalogued(DomainEvent, type_name="registration.CourseCatalogued"):
    """A course joined the catalogue."""

    course_id: str
    title: str
    department: str
    credits: int
    level: Level
    prerequisites: Prerequisites = ()
    restricted_to: Level | None = None


# -- a section's seats --------------------------------------------------------------------


class SectionOffered(DomainEvent, type_name="registration.SectionOffered"):
    """A section of a course was offered in a term, with its meetings and seats."""

    section_id: str
    term_id: str
    course_id: str
    credits: int
    meetings: tuple[Meeting, ...]
    capacity: int
    waitlist_capacity: int
    instructor: str = ""


class SeatTaken(DomainEvent, type_name="registration.SeatTaken"):
    """A student took a seat (`from_waitlist`: promoted from the head of the waitlist)."""

    section_id: str
    student_id: str
    from_waitlist: bool = False


class SeatReleased(DomainEvent, type_name="registration.SeatReleased"):
    """A student gave up their seat (`via` a drop or a swap)."""

    section_id: str
    student_id: str
    via: Action = Action.DROP


class StudentWaitlisted(DomainEvent, type_name="registration.StudentWaitlisted"):
    """A student joined the end of the section's waitlist."""

    section_id: str
    student_id: str


class StudentLeftWaitlist(DomainEvent, type_name="registration.StudentLeftWaitlist"):
    """A student left the waitlist: withdrew (`via` drop) or was skipped (`via` promote)."""

    section_id: str
    student_id: str
    via: Action = Action.DROP


class CapacityChanged(DomainEvent, type_name="registration.CapacityChanged"):
    """The registrar changed the section's seats or waitlist room."""

    section_id: str
    capacity: int
    waitlist_capacity: int


# -- a student's schedule for a term ------------------------------------------------------


class ScheduleOpened(DomainEvent, type_name="registration.ScheduleOpened"):
    """A student's first request of the term opened their schedule."""

    term_id: str
    student_id: str


class SectionAdded(DomainEvent, type_name="registration.SectionAdded"):
    """A section joined the schedule (`via` registration, a swap, or the waitlist)."""

    term_id: str
    student_id: str
    section_id: str
    course_id: str
    credits: int
    meetings: tuple[Meeting, ...]
    via: Action = Action.REGISTER


class SectionDropped(DomainEvent, type_name="registration.SectionDropped"):
    """A section left the schedule (`via` a drop or a swap)."""

    term_id: str
    student_id: str
    section_id: str
    course_id: str
    credits: int
    via: Action = Action.DROP


class SectionWaitlisted(DomainEvent, type_name="registration.SectionWaitlisted"):
    """The student joined a section's waitlist, at `position` (1: first in line)."""

    term_id: str
    student_id: str
    section_id: str
    course_id: str
    credits: int
    meetings: tuple[Meeting, ...]
    position: int


class WaitlistWithdrawn(DomainEvent, type_name="registration.WaitlistWithdrawn"):
    """The student gave up their place on a section's waitlist."""

    term_id: str
    student_id: str
    section_id: str


class WaitlistSkipped(DomainEvent, type_name="registration.WaitlistSkipped"):
    """A seat came free, but the student no longer qualified for it: they left the line."""

    term_id: str
    student_id: str
    section_id: str
    reason: RefusalReason


class RequestRefused(DomainEvent, type_name="registration.RequestRefused"):
    """A request was refused, and why (`other_section_id`: the one a swap would drop)."""

    term_id: str
    student_id: str
    action: Action
    section_id: str
    reason: RefusalReason
    other_section_id: str | None = None
