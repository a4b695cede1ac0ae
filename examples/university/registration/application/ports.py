"""What the application layer needs from the outside: a clock, and the student directory.

The directory is registration's own view of the students, kept from the records
context's integration events (see `records_feed`); the infrastructure implements it in
the context's tables. Its reads and writes run on the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from university.registration.domain.values import Hold, Level, StudentRecord

__all__ = [
    "AdmittedStudent",
    "Clock",
    "CompletedCourse",
    "LiftedHold",
    "PlacedHold",
    "StudentDirectory",
]

Clock = Callable[[], datetime]
"""The time of a decision (timezone-aware); tests pass their own."""


@dataclass(frozen=True)
class AdmittedStudent:
    """A student's standing as records last told it (`revision` orders the changes)."""

    student_id: str
    level: Level
    earned_credits: int
    revision: int


@dataclass(frozen=True)
class PlacedHold:
    """A hold records placed on a student."""

    student_id: str
    hold: Hold


@dataclass(frozen=True)
class LiftedHold:
    """A hold records lifted."""

    student_id: str
    hold_id: str


@dataclass(frozen=True)
class CompletedCourse:
    """A course a student completed (for prerequisites)."""

    student_id: str
    course_id: str
    term_id: str
    grade: str


class StudentDirectory(Protocol):
    """Registration's view of the students, read and written on the caller's transaction.

    Every write is idempotent and order-independent: an older revision of a student
    does not replace a newer one, and a hold lifted before it was heard of as placed
    stays lifted.
    """

    async def record_of(self, connection: AsyncConnection, student_id: str) -> StudentRecord | None:
        """What is known of `student_id` (`None`: never admitted)."""
        ...

    async def admit(self, connection: AsyncConnection, students: Sequence[AdmittedStudent]) -> None:
        """Keep each student's standing, unless a newer revision is kept."""
        ...

    async def place_holds(self, connection: AsyncConnection, holds: Sequence[PlacedHold]) -> None:
        """Keep the holds (a hold lifted already stays lifted)."""
        ...

    async def lift_holds(self, connection: AsyncConnection, holds: Sequence[LiftedHold]) -> None:
        """Mark the holds lifted."""
        ...

    async def complete_courses(
        self, connection: AsyncConnection, courses: Sequence[CompletedCourse]
    ) -> None:
        """Keep the completed courses."""
        ...
