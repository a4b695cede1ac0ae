"""The `Section` aggregate: a course section with a fixed number of seats."""

from __future__ import annotations

from eventcore import Aggregate, apply
from university.registration.domain.errors import (
    AlreadyRegistered,
    InvalidCapacity,
    NotRegistered,
    SectionFull,
)
from university.registration.domain.events import SectionOpened, StudentDropped, StudentRegistered

__all__ = ["Section"]


class Section(Aggregate, aggregate_type="registration.Section"):
    """A course section: students register for its seats and may drop them.

    Invariants, checked by the command methods before anything is recorded:

    - a student holds at most one seat (`AlreadyRegistered`);
    - no more students than seats (`SectionFull`);
    - only a registered student can drop (`NotRegistered`).
    """

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.capacity = 0
        self._students: set[str] = set()

    # -- commands -----------------------------------------------------------------------

    @classmethod
    def open(cls, section_id: str, capacity: int) -> Section:
        """Open a new section with `capacity` seats."""
        if capacity < 1:
            raise InvalidCapacity(section_id, capacity)
        section = cls(section_id)
        section.record(SectionOpened(section_id=section_id, capacity=capacity))
        return section

    def register(self, student_id: str) -> None:
        """Give `student_id` a seat, if they have none and one is free."""
        if student_id in self._students:
            raise AlreadyRegistered(self.id, student_id)
        if self.is_full:
            raise SectionFull(self.id, self.capacity)
        self.record(StudentRegistered(section_id=self.id, student_id=student_id))

    def drop(self, student_id: str) -> None:
        """Free the seat `student_id` holds."""
        if student_id not in self._students:
            raise NotRegistered(self.id, student_id)
        self.record(StudentDropped(section_id=self.id, student_id=student_id))

    # -- queries ------------------------------------------------------------------------

    @property
    def students(self) -> frozenset[str]:
        """The students holding a seat."""
        return frozenset(self._students)

    @property
    def seats_left(self) -> int:
        """How many seats are free."""
        return self.capacity - len(self._students)

    @property
    def is_full(self) -> bool:
        """True when no seat is free."""
        return self.seats_left <= 0

    # -- state changes ------------------------------------------------------------------

    @apply
    def _opened(self, event: SectionOpened) -> None:
        self.capacity = event.capacity

    @apply
    def _registered(self, event: StudentRegistered) -> None:
        self._students.add(event.student_id)

    @apply
    def _dropped(self, event: StudentDropped) -> None:
        self._students.discard(event.student_id)
