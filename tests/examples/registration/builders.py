"""Facts the domain tests are built from: a term, courses, sections and students."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from university.registration.domain.course import Course
from university.registration.domain.events import ScheduleOpened, SectionAdded, SectionOffered
from university.registration.domain.requests import AddRequest
from university.registration.domain.section import Section
from university.registration.domain.term import Term
from university.registration.domain.values import (
    CreditLimits,
    Hold,
    Level,
    Meeting,
    StudentRecord,
    TimeTicket,
    Weekday,
)

__all__ = [
    "NOW",
    "TERM",
    "added",
    "course",
    "meeting",
    "offered",
    "opened",
    "request",
    "section",
    "student",
    "term",
]

NOW = datetime(2026, 8, 20, 9, 0, tzinfo=UTC)
TERM = "2026FA"
DAY = timedelta(days=1)


def meeting(days: str = "MO WE FR", starts: str = "09:00", ends: str = "09:50") -> Meeting:
    """A weekly meeting, e.g. `meeting("TU TH", "10:00", "11:15")`."""
    return Meeting(
        days=tuple(Weekday(d) for d in days.split()),
        starts=time.fromisoformat(starts),
        ends=time.fromisoformat(ends),
    )


def term(**changes: object) -> Term:
    """Seniors opened yesterday, everyone else opens tomorrow; add for a week, drop for two."""
    options: dict[str, object] = {
        "name": "Fall 2026",
        "starts_on": date(2026, 9, 1),
        "ends_on": date(2026, 12, 18),
        "time_tickets": [
            TimeTicket(group="seniors", opens_at=NOW - DAY, min_earned_credits=90),
            TimeTicket(group="graduates", opens_at=NOW - 2 * DAY, level=Level.GRADUATE),
            TimeTicket(group="everyone", opens_at=NOW + DAY),
        ],
        "add_deadline": NOW + 7 * DAY,
        "drop_deadline": NOW + 14 * DAY,
        "credit_limits": CreditLimits(undergraduate=12, graduate=9),
    }
    options.update(changes)
    return Term.schedule(TERM, **options)  # type: ignore[arg-type]


def course(course_id: str = "CS101", credits: int = 4, **changes: object) -> Course:
    """A catalogued course."""
    return Course.catalogue(
        course_id,
        title=f"Course {course_id}",
        department=course_id[:-3],
        credits=credits,
        **changes,  # type: ignore[arg-type]
    )


def offered(
    section_id: str = "2026FA-CS101-01",
    course_id: str = "CS101",
    *,
    credits: int = 4,
    meetings: tuple[Meeting, ...] | None = None,
    capacity: int = 2,
    waitlist_capacity: int = 1,
) -> SectionOffered:
    """The first event of a section."""
    return SectionOffered(
        section_id=section_id,
        term_id=TERM,
        course_id=course_id,
        credits=credits,
        meetings=meetings if meetings is not None else (meeting(),),
        capacity=capacity,
        waitlist_capacity=waitlist_capacity,
    )


def section(*events: object, **offer: object) -> Section:
    """A section rebuilt from `offered(**offer)` and `events`."""
    return Section.rehydrate(
        "section:x",
        [offered(**offer), *events],  # type: ignore[arg-type, list-item]
    )


def student(
    student_id: str = "ada",
    *,
    credits: int = 95,
    level: Level = Level.UNDERGRADUATE,
    holds: tuple[Hold, ...] = (),
    completed: tuple[str, ...] = (),
) -> StudentRecord:
    """A senior (95 credits) unless told otherwise."""
    return StudentRecord(
        student_id=student_id,
        level=level,
        earned_credits=credits,
        holds=holds,
        completed_courses=frozenset(completed),
    )


def opened(student_id: str = "ada") -> ScheduleOpened:
    """The first event of a schedule."""
    return ScheduleOpened(term_id=TERM, student_id=student_id)


def added(offer: SectionOffered, student_id: str = "ada") -> SectionAdded:
    """`offer`'s section added to `student_id`'s schedule."""
    return SectionAdded(
        term_id=TERM,
        student_id=student_id,
        section_id=offer.section_id,
        course_id=offer.course_id,
        credits=offer.credits,
        meetings=offer.meetings,
    )


def request(
    target: Section | None = None,
    *,
    who: StudentRecord | None = None,
    student_id: str = "ada",
    of_course: Course | None = None,
    of_term: Term | None = None,
    at: datetime = NOW,
    unknown: bool = False,
) -> AddRequest:
    """`student_id`'s request for `target` (a fresh section by default), decided at `at`."""
    target = target or section()
    record = None if unknown else (who or student(student_id))
    return AddRequest.of(
        of_term or term(),
        of_course or course(target.course_id, target.credits),
        target,
        student_id,
        record,
        at,
    )
