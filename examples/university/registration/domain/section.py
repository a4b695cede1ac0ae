"""The `Section` aggregate: a course's section in a term, its seats and its waitlist."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from eventcore import Aggregate, apply
from university.registration.domain.course import Course
from university.registration.domain.errors import InvalidSection, RuleBroken
from university.registration.domain.events import (
    CapacityChanged,
    SeatReleased,
    SeatTaken,
    SectionOffered,
    StudentLeftWaitlist,
    StudentWaitlisted,
)
from university.registration.domain.reasons import Action
from university.registration.domain.values import Meeting

__all__ = ["Offering", "Placement", "Section"]


class Placement(StrEnum):
    """What a section can offer a student right now."""

    SEAT = "seat"
    """A seat is free beyond those owed to the students already waiting."""
    WAITLIST = "waitlist"
    """No seat for a newcomer, but room at the end of the waitlist."""
    FULL = "full"
    """Neither."""


@dataclass(frozen=True)
class Offering:
    """What a schedule needs to know of a section."""

    section_id: str
    term_id: str
    course_id: str
    credits: int
    meetings: tuple[Meeting, ...]
    capacity: int
    waitlist_capacity: int


class Section(Aggregate, aggregate_type="registration.Section"):
    """A section (stream `section:{section_id}`): seats, and a first-come waitlist.

    Invariants, checked before anything is recorded:

    - never more students than seats, nor more waiting than the waitlist's room;
    - a student holds one seat at most, and is never both seated and waiting;
    - while students wait, a free seat is theirs: a newcomer gets a seat only if more
      seats are free than students wait (`placement_for`), and seats go to the head of
      the line first (`promote`, `skip`).
    """

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.section_id = ""
        self.term_id = ""
        self.course_id = ""
        self.credits = 0
        self.meetings: tuple[Meeting, ...] = ()
        self.capacity = 0
        self.waitlist_capacity = 0
        self.instructor = ""
        self.enrolled: set[str] = set()
        self.waitlist: list[str] = []

    @staticmethod
    def stream_id(section_id: str) -> str:
        """The stream of section `section_id`."""
        return f"section:{section_id}"

    # -- commands -----------------------------------------------------------------------

    @classmethod
    def offer(
        cls,
        section_id: str,
        *,
        term_id: str,
        course: Course,
        meetings: Sequence[Meeting],
        capacity: int,
        waitlist_capacity: int = 0,
        instructor: str = "",
    ) -> Section:
        """Offer a section of `course` in a term (`InvalidSection` for impossible seats)."""
        if not section_id.strip():
            raise InvalidSection(section_id, "the section id must not be blank")
        _check_seats(section_id, capacity, waitlist_capacity)
        section = cls(cls.stream_id(section_id))
        section.record(
            SectionOffered(
                section_id=section_id,
                term_id=term_id,
                course_id=course.course_id,
                credits=course.credits,
                meetings=tuple(meetings),
                capacity=capacity,
                waitlist_capacity=waitlist_capacity,
                instructor=instructor,
            )
        )
        return section

    def take_seat(self, student_id: str) -> None:
        """Seat a newcomer (the schedule has accepted them, and `placement_for` said SEAT)."""
        self._require_newcomer(student_id)
        if self.placement_for(student_id) is not Placement.SEAT:
            raise RuleBroken(self.id, f"no seat is free for {student_id}")
        self.record(SeatTaken(section_id=self.section_id, student_id=student_id))

    def join_waitlist(self, student_id: str) -> None:
        """Put a newcomer at the end of the waitlist (`placement_for` said WAITLIST)."""
        self._require_newcomer(student_id)
        if self.placement_for(student_id) is not Placement.WAITLIST:
            raise RuleBroken(self.id, f"no room on the waitlist for {student_id}")
        self.record(StudentWaitlisted(section_id=self.section_id, student_id=student_id))

    def release_seat(self, student_id: str, *, via: Action = Action.DROP) -> None:
        """Free the seat `student_id` holds (a drop, or the first half of a swap)."""
        if student_id not in self.enrolled:
            raise RuleBroken(self.id, f"{student_id} holds no seat")
        self.record(SeatReleased(section_id=self.section_id, student_id=student_id, via=via))

    def leave_waitlist(self, student_id: str) -> None:
        """Take `student_id` off the waitlist at their request."""
        if student_id not in self.waitlist:
            raise RuleBroken(self.id, f"{student_id} is not waiting")
        self.record(StudentLeftWaitlist(section_id=self.section_id, student_id=student_id))

    def promote(self, student_id: str) -> None:
        """Give the free seat to the head of the line (`next_in_line`)."""
        self._require_next(student_id)
        self.record(
            SeatTaken(section_id=self.section_id, student_id=student_id, from_waitlist=True)
        )

    def skip(self, student_id: str) -> None:
        """Take the head of the line off the waitlist: they no longer qualify for the seat."""
        self._require_next(student_id)
        self.record(
            StudentLeftWaitlist(
                section_id=self.section_id, student_id=student_id, via=Action.PROMOTE
            )
        )

    def change_capacity(self, capacity: int, waitlist_capacity: int) -> None:
        """Change the seats and the waitlist's room (never below who holds or waits)."""
        _check_seats(self.section_id, capacity, waitlist_capacity)
        if capacity < len(self.enrolled):
            raise InvalidSection(
                self.section_id, f"{len(self.enrolled)} students hold seats: capacity {capacity}"
            )
        if waitlist_capacity < len(self.waitlist):
            raise InvalidSection(
                self.section_id,
                f"{len(self.waitlist)} students wait: waitlist capacity {waitlist_capacity}",
            )
        if (capacity, waitlist_capacity) == (self.capacity, self.waitlist_capacity):
            return
        self.record(
            CapacityChanged(
                section_id=self.section_id,
                capacity=capacity,
                waitlist_capacity=waitlist_capacity,
            )
        )

    # -- queries ------------------------------------------------------------------------

    @property
    def offering(self) -> Offering:
        """What a schedule needs to know of this section."""
        return Offering(
            self.section_id,
            self.term_id,
            self.course_id,
            self.credits,
            self.meetings,
            self.capacity,
            self.waitlist_capacity,
        )

    @property
    def seats_free(self) -> int:
        """Seats nobody holds (some may be owed to the students waiting)."""
        return self.capacity - len(self.enrolled)

    @property
    def next_in_line(self) -> str | None:
        """The student a free seat goes to now: the head of the waitlist, if a seat is free."""
        return self.waitlist[0] if self.waitlist and self.seats_free > 0 else None

    def placement_for(self, student_id: str) -> Placement:
        """What the section can offer `student_id` now (the head of the line gets the seat)."""
        if student_id == self.next_in_line or self.seats_free > len(self.waitlist):
            return Placement.SEAT
        if len(self.waitlist) < self.waitlist_capacity:
            return Placement.WAITLIST
        return Placement.FULL

    def position_of(self, student_id: str) -> int | None:
        """Where `student_id` waits (1: next in line), if they do."""
        try:
            return self.waitlist.index(student_id) + 1
        except ValueError:
            return None

    # -- rules ----------------------------------------------------------------------------

    def _require_newcomer(self, student_id: str) -> None:
        if student_id in self.enrolled or student_id in self.waitlist:
            raise RuleBroken(self.id, f"{student_id} holds a seat or waits already")

    def _require_next(self, student_id: str) -> None:
        if student_id != self.next_in_line:
            raise RuleBroken(self.id, f"{student_id} is not next in line for a free seat")

    # -- state changes ------------------------------------------------------------------

    @apply
    def _offered(self, event: SectionOffered) -> None:
        self.section_id = event.section_id
        self.term_id = event.term_id
        self.course_id = event.course_id
        self.credits = event.credits
        self.meetings = event.meetings
        self.capacity = event.capacity
        self.waitlist_capacity = event.waitlist_capacity
        self.instructor = event.instructor

    @apply
    def _seat_taken(self, event: SeatTaken) -> None:
        if event.from_waitlist:
            self.waitlist.remove(event.student_id)
        self.enrolled.add(event.student_id)

    @apply
    def _seat_released(self, event: SeatReleased) -> None:
        self.enrolled.discard(event.student_id)

    @apply
    def _waitlisted(self, event: StudentWaitlisted) -> None:
        self.waitlist.append(event.student_id)

    @apply
    def _left_waitlist(self, event: StudentLeftWaitlist) -> None:
        self.waitlist.remove(event.student_id)

    @apply
    def _capacity_changed(self, event: CapacityChanged) -> None:
        self.capacity = event.capacity
        self.waitlist_capacity = event.waitlist_capacity


def _check_seats(section_id: str, capacity: int, waitlist_capacity: int) -> None:
    if capacity < 1:
        raise InvalidSection(section_id, f"capacity {capacity} is not >= 1")
    if waitlist_capacity < 0:
        raise InvalidSection(section_id, f"waitlist capacity {waitlist_capacity} is not >= 0")
