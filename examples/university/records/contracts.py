"""What records promises other contexts: its published integration events.

This module is records' public contract, and the only part of records that another
context may import. Registration learns from it who is admitted (and their level and
earned credits, for time tickets and credit limits), which holds block them, and which
courses they completed (for prerequisites); it never calls records. Each event carries
only what other contexts need: no contact or other personal details.

Every message is keyed by student id, so one student's changes reach a consumer in
order; still, a consumer must not rely on it (a redelivered message arrives late):
`revision` orders a student's changes, holds are identified by `hold_id`, and a
completion is a fact that does not change.
"""

from __future__ import annotations

from datetime import date, datetime

from eventcore import IntegrationEvent

__all__ = [
    "HOLDS",
    "STUDENTS",
    "TOPICS",
    "TRANSCRIPTS",
    "CourseCompleted",
    "HoldLifted",
    "HoldPlaced",
    "StudentAdmitted",
    "StudentChanged",
]

STUDENTS = "records.students"
"""The topic of admissions and changes of standing."""
HOLDS = "records.holds"
"""The topic of holds placed and lifted."""
TRANSCRIPTS = "records.transcripts"
"""The topic of completed courses."""
TOPICS = (STUDENTS, HOLDS, TRANSCRIPTS)
"""Every topic records publishes to."""


class StudentAdmitted(IntegrationEvent, type_name="records.StudentAdmitted", topic=STUDENTS):
    """A student was admitted: they may register from now on."""

    student_id: str
    level: str
    """`undergraduate` or `graduate`."""
    program: str
    earned_credits: int
    revision: int
    """The student record's revision: it grows with every change of the student."""
    occurred_at: datetime


class StudentChanged(IntegrationEvent, type_name="records.StudentChanged", topic=STUDENTS):
    """A student's standing changed (level, program, earned credits): their new standing."""

    student_id: str
    level: str
    program: str
    earned_credits: int
    revision: int
    """The student record's revision (see `StudentAdmitted.revision`)."""
    occurred_at: datetime


class HoldPlaced(IntegrationEvent, type_name="records.HoldPlaced", topic=HOLDS):
    """A hold was placed on a student (a bursar's debt, an advising appointment, ...).

    `blocks` says what it blocks (`registration`, `transcript`, `graduation`, ...); it is
    active from `starts_on` to `ends_on` (inclusive; open-ended without one).
    """

    hold_id: str
    student_id: str
    hold_type: str
    blocks: tuple[str, ...]
    starts_on: date
    ends_on: date | None = None
    reason: str = ""
    occurred_at: datetime


class HoldLifted(IntegrationEvent, type_name="records.HoldLifted", topic=HOLDS):
    """A hold was lifted: it blocks nothing any more."""

    hold_id: str
    student_id: str
    occurred_at: datetime


class CourseCompleted(IntegrationEvent, type_name="records.CourseCompleted", topic=TRANSCRIPTS):
    """A student completed a course with credit (it counts for prerequisites)."""

    student_id: str
    course_id: str
    term_id: str
    grade: str
    credits: int
    occurred_at: datetime
