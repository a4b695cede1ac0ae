"""Why a registration request was refused: one typed reason per rule.

Each reason is an immutable pydantic model with a stable `code` (what an API client
branches on, and what the audit trail stores) and the facts behind it (the section it
conflicts with, the limit it would break, when the window opens). `RefusalReason` is
their union, discriminated by `code`, so a stored refusal decodes to the right class.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from university.registration.domain.values import Level, Prerequisites

__all__ = [
    "Action",
    "AlreadyRegistered",
    "AlreadyWaitlisted",
    "CreditLimitExceeded",
    "DuplicateCourse",
    "LevelRestricted",
    "NoSeatForSwap",
    "NotRegistered",
    "OutsideWindow",
    "PrerequisiteMissing",
    "RefusalReason",
    "RegistrationHold",
    "SectionFull",
    "SectionNotFound",
    "StudentNotAdmitted",
    "TimeConflict",
]


class Action(StrEnum):
    """What a student (or the waitlist) asked for."""

    REGISTER = "register"
    DROP = "drop"
    SWAP = "swap"
    PROMOTE = "promote"


class _Reason(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @property
    def message(self) -> str:
        """The reason in words, for people."""
        raise NotImplementedError


class StudentNotAdmitted(_Reason):
    """Registration has not heard of the student from the records context."""

    code: Literal["student-not-admitted"] = "student-not-admitted"
    student_id: str

    @property
    def message(self) -> str:
        return f"{self.student_id} is not an admitted student"


class SectionNotFound(_Reason):
    """No such section is offered in the term."""

    code: Literal["section-not-found"] = "section-not-found"
    section_id: str
    term_id: str

    @property
    def message(self) -> str:
        return f"section {self.section_id} is not offered in term {self.term_id}"


class OutsideWindow(_Reason):
    """The request came before the student's time ticket opened, or after the deadline."""

    code: Literal["outside-window"] = "outside-window"
    action: Action
    opens_at: datetime
    closes_at: datetime
    at: datetime

    @property
    def message(self) -> str:
        when = "opens" if self.at < self.opens_at else "closed"
        moment = self.opens_at if self.at < self.opens_at else self.closes_at
        return f"the window to {self.action.value} {when} at {moment:%Y-%m-%d %H:%M} UTC"


class RegistrationHold(_Reason):
    """An active hold blocks registration."""

    code: Literal["hold"] = "hold"
    hold_id: str
    hold_type: str
    reason: str = ""

    @property
    def message(self) -> str:
        why = f": {self.reason}" if self.reason else ""
        return f"a {self.hold_type} hold blocks registration{why}"


class AlreadyRegistered(_Reason):
    """The student holds a seat in the section already."""

    code: Literal["already-registered"] = "already-registered"
    section_id: str

    @property
    def message(self) -> str:
        return f"already registered in {self.section_id}"


class AlreadyWaitlisted(_Reason):
    """The student is on the section's waitlist already."""

    code: Literal["already-waitlisted"] = "already-waitlisted"
    section_id: str

    @property
    def message(self) -> str:
        return f"already on the waitlist of {self.section_id}"


class DuplicateCourse(_Reason):
    """The student is registered (or waitlisted) in another section of the same course."""

    code: Literal["duplicate-course"] = "duplicate-course"
    course_id: str
    other_section_id: str

    @property
    def message(self) -> str:
        return f"{self.course_id} is on the schedule already, in {self.other_section_id}"


class LevelRestricted(_Reason):
    """The course is restricted to students of another level."""

    code: Literal["level-restricted"] = "level-restricted"
    required: Level
    level: Level

    @property
    def message(self) -> str:
        return f"restricted to {self.required.value} students"


class PrerequisiteMissing(_Reason):
    """A prerequisite of the course is not completed (`missing`: the unmet groups)."""

    code: Literal["prerequisite-missing"] = "prerequisite-missing"
    course_id: str
    missing: Prerequisites

    @property
    def message(self) -> str:
        groups = " and ".join(" or ".join(group) for group in self.missing)
        return f"{self.course_id} requires {groups}"


class TimeConflict(_Reason):
    """The section meets at the same time as one on the schedule."""

    code: Literal["time-conflict"] = "time-conflict"
    with_section_id: str

    @property
    def message(self) -> str:
        return f"time conflict with {self.with_section_id}"


class CreditLimitExceeded(_Reason):
    """The schedule would have more credits than the term allows the student."""

    code: Literal["credit-limit"] = "credit-limit"
    limit: int
    requested: int

    @property
    def message(self) -> str:
        return f"{self.requested} credits would exceed the limit of {self.limit}"


class SectionFull(_Reason):
    """No seat is free and the waitlist has no room either."""

    code: Literal["section-full"] = "section-full"
    section_id: str
    capacity: int
    waitlist_capacity: int

    @property
    def message(self) -> str:
        line = f", waitlist of {self.waitlist_capacity} full" if self.waitlist_capacity else ""
        return f"{self.section_id} is full ({self.capacity} seats{line})"


class NoSeatForSwap(_Reason):
    """A swap needs a free seat in the section swapped to (it never waitlists)."""

    code: Literal["no-seat-for-swap"] = "no-seat-for-swap"
    section_id: str

    @property
    def message(self) -> str:
        return f"no free seat in {self.section_id} (a swap does not waitlist)"


class NotRegistered(_Reason):
    """The student neither holds a seat in the section nor waits for one."""

    code: Literal["not-registered"] = "not-registered"
    section_id: str

    @property
    def message(self) -> str:
        return f"not registered in {self.section_id}"


RefusalReason = Annotated[
    StudentNotAdmitted
    | SectionNotFound
    | OutsideWindow
    | RegistrationHold
    | AlreadyRegistered
    | AlreadyWaitlisted
    | DuplicateCourse
    | LevelRestricted
    | PrerequisiteMissing
    | TimeConflict
    | CreditLimitExceeded
    | SectionFull
    | NoSeatForSwap
    | NotRegistered,
    Field(discriminator="code"),
]
"""Any refusal reason; stored and decoded by its `code`."""
