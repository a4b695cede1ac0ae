"""The `Schedule` aggregate: one student's sections in one term, and every request made.

The schedule is where a request is decided: it knows the student's sections (credits,
meeting times, courses), and is handed the rest (`AddRequest`). Each request records
its outcome in the schedule's stream, a refusal included (`RequestRefused`), so the
audit trail of attempts costs the busy section stream nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from eventcore import Aggregate, apply
from university.registration.domain.errors import RuleBroken
from university.registration.domain.events import (
    RequestRefused,
    ScheduleOpened,
    SectionAdded,
    SectionDropped,
    SectionWaitlisted,
    WaitlistSkipped,
    WaitlistWithdrawn,
)
from university.registration.domain.reasons import (
    Action,
    AlreadyRegistered,
    AlreadyWaitlisted,
    CreditLimitExceeded,
    DuplicateCourse,
    LevelRestricted,
    NoSeatForSwap,
    NotRegistered,
    PrerequisiteMissing,
    RefusalReason,
    RegistrationHold,
    SectionFull,
    StudentNotAdmitted,
    TimeConflict,
)
from university.registration.domain.requests import (
    AddRequest,
    Dropped,
    Enrolled,
    Refused,
    Swapped,
    Waitlisted,
)
from university.registration.domain.section import Placement
from university.registration.domain.term import RegistrationWindow
from university.registration.domain.values import Meeting, first_overlap

__all__ = ["Entry", "Schedule"]


@dataclass(frozen=True)
class Entry:
    """A section on the schedule (seated or waiting)."""

    section_id: str
    course_id: str
    credits: int
    meetings: tuple[Meeting, ...]


class Schedule(Aggregate, aggregate_type="registration.Schedule"):
    """A student's schedule for a term (stream `schedule:{term_id}:{student_id}`).

    Invariants of the sections held (`enrolled`), whatever the order of requests:

    - at most the credit limit the request carries (waitlisted sections do not count);
    - no two sections whose meetings overlap;
    - one section per course, seated or waiting (no waitlisting two sections of one).

    A request is checked in this order, and refused with the first reason that
    applies: not admitted, outside the window, a hold, the section on the schedule
    already, the course on it already, level, prerequisites, time conflict, credit
    limit, and last the seats (full, or no seat for a swap).
    """

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.term_id = ""
        self.student_id = ""
        self.enrolled: dict[str, Entry] = {}
        self.waitlisted: dict[str, Entry] = {}

    @staticmethod
    def stream_id(term_id: str, student_id: str) -> str:
        """The stream of `student_id`'s schedule in `term_id`."""
        return f"schedule:{term_id}:{student_id}"

    @classmethod
    def open(cls, term_id: str, student_id: str) -> Schedule:
        """A new schedule, opened by the student's first request of the term."""
        schedule = cls(cls.stream_id(term_id, student_id))
        schedule.record(ScheduleOpened(term_id=term_id, student_id=student_id))
        return schedule

    @property
    def credits(self) -> int:
        """The credits of the sections held."""
        return sum(entry.credits for entry in self.enrolled.values())

    # -- requests ---------------------------------------------------------------------

    def register(self, request: AddRequest) -> Enrolled | Waitlisted | Refused:
        """Take a seat, or a place on the waitlist, in the requested section."""
        offering = request.offering
        reason = self._refusal_to_add(request, Action.REGISTER)
        if reason is None and request.placement is Placement.FULL:
            reason = SectionFull(
                section_id=offering.section_id,
                capacity=offering.capacity,
                waitlist_capacity=offering.waitlist_capacity,
            )
        if reason is not None:
            return self.refuse(Action.REGISTER, offering.section_id, reason)
        if request.placement is Placement.SEAT:
            self.record(self._added(request, Action.REGISTER))
            return Enrolled(offering.section_id)
        self.record(
            SectionWaitlisted(
                **self._ids(),
                section_id=offering.section_id,
                course_id=offering.course_id,
                credits=offering.credits,
                meetings=offering.meetings,
                position=request.waitlist_position,
            )
        )
        return Waitlisted(offering.section_id, request.waitlist_position)

    def drop(
        self, section_id: str, window: RegistrationWindow | None, at: datetime
    ) -> Dropped | Refused:
        """Give up a seat (before the drop deadline) or a place in line (at any time)."""
        if section_id in self.waitlisted:
            self.record(WaitlistWithdrawn(**self._ids(), section_id=section_id))
            return Dropped(section_id, was_waitlisted=True)
        entry = self.enrolled.get(section_id)
        if entry is None:
            return self.refuse(Action.DROP, section_id, NotRegistered(section_id=section_id))
        if window is None:
            reason: RefusalReason = StudentNotAdmitted(student_id=self.student_id)
            return self.refuse(Action.DROP, section_id, reason)
        outside = window.refusal(Action.DROP, at)
        if outside is not None:
            return self.refuse(Action.DROP, section_id, outside)
        self.record(self._dropped(entry, Action.DROP))
        return Dropped(section_id)

    def swap(self, drop_section_id: str, request: AddRequest) -> Swapped | Refused:
        """Drop one section and add another as one decision: both, or neither.

        The add is checked as if the dropped section were gone (its credits, meetings
        and course), and needs a free seat: a swap never waitlists.
        """
        added = request.offering.section_id
        reason: RefusalReason | None
        if drop_section_id not in self.enrolled:
            reason = NotRegistered(section_id=drop_section_id)
        elif added == drop_section_id:
            reason = AlreadyRegistered(section_id=added)
        else:
            reason = self._refusal_to_add(request, Action.SWAP, replacing=drop_section_id)
        if reason is None and request.placement is not Placement.SEAT:
            reason = NoSeatForSwap(section_id=added)
        if reason is not None:
            return self.refuse(Action.SWAP, added, reason, other=drop_section_id)
        self.record(self._dropped(self.enrolled[drop_section_id], Action.SWAP))
        self.record(self._added(request, Action.SWAP))
        return Swapped(dropped=drop_section_id, added=added)

    def promote(self, request: AddRequest) -> Enrolled | Refused:
        """A seat came free for this waiting student: take it if they still qualify now,
        else leave the line (`WaitlistSkipped`, with the reason)."""
        section_id = request.offering.section_id
        if section_id not in self.waitlisted:
            raise RuleBroken(self.id, f"{self.student_id} is not waiting for {section_id}")
        reason = self._refusal_to_add(request, Action.PROMOTE)
        if reason is not None:
            self.record(WaitlistSkipped(**self._ids(), section_id=section_id, reason=reason))
            return Refused(section_id, reason)
        self.record(self._added(request, Action.PROMOTE))
        return Enrolled(section_id)

    def refuse(
        self, action: Action, section_id: str, reason: RefusalReason, *, other: str | None = None
    ) -> Refused:
        """Record a refusal decided before the schedule's rules ran (an unknown section)."""
        self.record(
            RequestRefused(
                **self._ids(),
                action=action,
                section_id=section_id,
                reason=reason,
                other_section_id=other,
            )
        )
        return Refused(section_id, reason)

    # -- the rules ------------------------------------------------------------------------

    def _refusal_to_add(
        self, request: AddRequest, action: Action, *, replacing: str | None = None
    ) -> RefusalReason | None:
        offering, student, at = request.offering, request.student, request.at
        if student is None or request.window is None or request.credit_limit is None:
            return StudentNotAdmitted(student_id=self.student_id)
        outside = request.window.refusal(action, at)
        if outside is not None:
            return outside
        hold = student.blocking_hold(at.date())
        if hold is not None:
            return RegistrationHold(
                hold_id=hold.hold_id, hold_type=hold.hold_type, reason=hold.reason
            )
        section_id = offering.section_id
        if section_id in self.enrolled:
            return AlreadyRegistered(section_id=section_id)
        if section_id in self.waitlisted and action is not Action.PROMOTE:
            return AlreadyWaitlisted(section_id=section_id)
        held = [e for e in self.enrolled.values() if e.section_id != replacing]
        waiting = [e for e in self.waitlisted.values() if e.section_id != section_id]
        same = next((e for e in held + waiting if e.course_id == offering.course_id), None)
        if same is not None:
            return DuplicateCourse(course_id=offering.course_id, other_section_id=same.section_id)
        if request.restricted_to is not None and student.level != request.restricted_to:
            return LevelRestricted(required=request.restricted_to, level=student.level)
        if request.missing_prerequisites:
            return PrerequisiteMissing(
                course_id=offering.course_id, missing=request.missing_prerequisites
            )
        clash = first_overlap(offering.meetings, ((e.section_id, e.meetings) for e in held))
        if clash is not None:
            return TimeConflict(with_section_id=clash)
        total = sum(e.credits for e in held) + offering.credits
        if total > request.credit_limit:
            return CreditLimitExceeded(limit=request.credit_limit, requested=total)
        return None

    def _ids(self) -> dict[str, str]:
        return {"term_id": self.term_id, "student_id": self.student_id}

    def _added(self, request: AddRequest, via: Action) -> SectionAdded:
        offering = request.offering
        return SectionAdded(
            **self._ids(),
            section_id=offering.section_id,
            course_id=offering.course_id,
            credits=offering.credits,
            meetings=offering.meetings,
            via=via,
        )

    def _dropped(self, entry: Entry, via: Action) -> SectionDropped:
        return SectionDropped(
            **self._ids(),
            section_id=entry.section_id,
            course_id=entry.course_id,
            credits=entry.credits,
            via=via,
        )

    # -- state changes ------------------------------------------------------------------

    @apply
    def _opened(self, event: ScheduleOpened) -> None:
        self.term_id = event.term_id
        self.student_id = event.student_id

    @apply
    def _section_added(self, event: SectionAdded) -> None:
        self.waitlisted.pop(event.section_id, None)
        self.enrolled[event.section_id] = Entry(
            event.section_id, event.course_id, event.credits, event.meetings
        )

    @apply
    def _section_dropped(self, event: SectionDropped) -> None:
        self.enrolled.pop(event.section_id, None)

    @apply
    def _waitlisted(self, event: SectionWaitlisted) -> None:
        self.waitlisted[event.section_id] = Entry(
            event.section_id, event.course_id, event.credits, event.meetings
        )

    @apply
    def _withdrawn(self, event: WaitlistWithdrawn) -> None:
        self.waitlisted.pop(event.section_id, None)

    @apply
    def _skipped(self, event: WaitlistSkipped) -> None:
        self.waitlisted.pop(event.section_id, None)

    @apply
    def _refused(self, event: RequestRefused) -> None:
        pass  # the audit trail's; the schedule itself does not change
