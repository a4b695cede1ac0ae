"""What callers ask the registration context to do, in the imperative.

A command is a plain immutable message. Its `command_id` becomes the causation id of
every event it records, and the correlation id too unless `correlation_id` is given
(the request it is part of: an HTTP request id, a conversation). `actor` is who asked:
the authenticated principal, once there is an API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from eventcore import new_event_id
from university.registration.domain.values import CreditLimits, Level, Meeting, TimeTicket

__all__ = [
    "CatalogueCourse",
    "ChangeCapacity",
    "Command",
    "DropSection",
    "OfferSection",
    "RegisterForSection",
    "ScheduleTerm",
    "SwapSections",
]


def _new_command_id() -> str:
    return str(new_event_id())


@dataclass(frozen=True, kw_only=True)
class Command:
    """What every command carries besides its own fields."""

    command_id: str = field(default_factory=_new_command_id)
    correlation_id: str | None = None
    actor: str = "registrar"


# -- the registrar's -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ScheduleTerm(Command):
    """Set up term `term_id` for registration."""

    term_id: str
    name: str
    starts_on: date
    ends_on: date
    time_tickets: Sequence[TimeTicket]
    add_deadline: datetime
    drop_deadline: datetime
    credit_limits: CreditLimits = field(default_factory=CreditLimits)


@dataclass(frozen=True, kw_only=True)
class CatalogueCourse(Command):
    """Add course `course_id` to the catalogue."""

    course_id: str
    title: str
    department: str
    credits: int
    level: Level = Level.UNDERGRADUATE
    prerequisites: Sequence[Sequence[str]] = ()
    restricted_to: Level | None = None


@dataclass(frozen=True, kw_only=True)
class OfferSection(Command):
    """Offer section `section_id` of a catalogued course in a scheduled term."""

    section_id: str
    term_id: str
    course_id: str
    meetings: Sequence[Meeting]
    capacity: int
    waitlist_capacity: int = 0
    instructor: str = ""


@dataclass(frozen=True, kw_only=True)
class ChangeCapacity(Command):
    """Change a section's seats and waitlist room (freed seats go to the waitlist)."""

    section_id: str
    capacity: int
    waitlist_capacity: int


# -- the student's ---------------------------------------------------------------------


@dataclass(frozen=True)
class RegisterForSection(Command):
    """Register `student_id` in section `section_id` of term `term_id` (or waitlist them)."""

    term_id: str
    student_id: str
    section_id: str


@dataclass(frozen=True)
class DropSection(Command):
    """Drop section `section_id` from `student_id`'s schedule (a seat or a place in line)."""

    term_id: str
    student_id: str
    section_id: str


@dataclass(frozen=True)
class SwapSections(Command):
    """Drop `drop_section_id` and add `add_section_id`, as one decision: both or neither."""

    term_id: str
    student_id: str
    drop_section_id: str
    add_section_id: str
