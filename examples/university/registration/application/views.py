"""What the queries answer: plain immutable values, ready to serialise.

Read models answer `SectionAvailability`, `StudentSchedule` and `AuditEntry` (in
`Page`s: `next_cursor` is the `after` of the next page, `None` on the last); temporal
queries answer `SectionState` and `ScheduleState` as of a moment; history queries
answer each stored event of a stream as a `HistoryEntry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from university.registration.domain.values import Meeting

__all__ = [
    "AuditEntry",
    "HistoryEntry",
    "Page",
    "ScheduleEntry",
    "ScheduleState",
    "SectionAvailability",
    "SectionSearch",
    "SectionState",
    "StudentSchedule",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of results, and the cursor of the next (`None`: this is the last)."""

    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class SectionSearch:
    """Which sections of a term to list: filters, page size and the cursor to start after."""

    term_id: str
    department: str | None = None
    course_id: str | None = None
    text: str | None = None
    """Part of the course's title (case-insensitive)."""
    open_only: bool = False
    """Only sections a newcomer can get a seat in now."""
    limit: int = 20
    after: str | None = None


@dataclass(frozen=True)
class SectionAvailability:
    """A section as the catalogue shows it: its course, meetings, seats and waitlist."""

    section_id: str
    term_id: str
    course_id: str
    title: str
    department: str
    credits: int
    meetings: tuple[Meeting, ...]
    instructor: str
    capacity: int
    enrolled: int
    waitlist_capacity: int
    waitlisted: int
    version: int
    """The section stream's version this row reflects (an ETag)."""

    @property
    def seats_open(self) -> int:
        """Seats a newcomer could get now (free seats not owed to the waitlist)."""
        return max(0, self.capacity - self.enrolled - self.waitlisted)


@dataclass(frozen=True)
class ScheduleEntry:
    """A section on a student's schedule: seated (`enrolled`) or `waitlisted`."""

    section_id: str
    status: str
    course_id: str
    credits: int
    meetings: tuple[Meeting, ...]
    since: datetime


@dataclass(frozen=True)
class StudentSchedule:
    """A student's sections in a term."""

    term_id: str
    student_id: str
    entries: list[ScheduleEntry]

    @property
    def credits(self) -> int:
        """Credits of the sections the student holds a seat in."""
        return sum(e.credits for e in self.entries if e.status == "enrolled")


@dataclass(frozen=True)
class AuditEntry:
    """One request and its outcome: who, when, why, and through which request."""

    position: int
    recorded_at: datetime
    term_id: str
    student_id: str
    section_id: str
    other_section_id: str | None
    action: str
    outcome: str
    """`enrolled`, `waitlisted`, `dropped`, `withdrawn`, `skipped` or `refused`."""
    reason_code: str | None
    detail: str
    actor: str | None
    correlation_id: str | None


@dataclass(frozen=True)
class SectionState:
    """A section as it was at a moment (or now): who held its seats, who waited."""

    section_id: str
    version: int
    capacity: int
    waitlist_capacity: int
    enrolled: tuple[str, ...]
    waitlist: tuple[str, ...]
    """In line order."""


@dataclass(frozen=True)
class ScheduleState:
    """A student's schedule as it was at a moment (or now)."""

    term_id: str
    student_id: str
    version: int
    enrolled: tuple[str, ...]
    waitlisted: tuple[str, ...]
    credits: int


@dataclass(frozen=True)
class HistoryEntry:
    """One stored event of a stream: what happened, when, by whom, caused by what."""

    version: int
    recorded_at: datetime
    event_type: str
    data: dict[str, Any]
    actor: str | None
    correlation_id: str | None
    causation_id: str | None
