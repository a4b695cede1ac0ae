"""Registration's value objects: meeting times, time tickets, holds, what is known of a student.

All are immutable pydantic models, so they can be fields of events as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, time
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, model_validator

__all__ = [
    "CreditLimits",
    "Hold",
    "Level",
    "Meeting",
    "Prerequisites",
    "StudentRecord",
    "TimeTicket",
    "Weekday",
    "first_overlap",
    "missing_prerequisites",
]


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Weekday(StrEnum):
    """A day a section meets on (Banner's day codes)."""

    MO = "MO"
    TU = "TU"
    WE = "WE"
    TH = "TH"
    FR = "FR"
    SA = "SA"
    SU = "SU"


class Level(StrEnum):
    """A student's (or a course's) level."""

    UNDERGRADUATE = "undergraduate"
    GRADUATE = "graduate"


class Meeting(_Value):
    """When a section meets each week: on `days`, from `starts` to `ends` (local time)."""

    days: tuple[Weekday, ...]
    starts: time
    ends: time

    @model_validator(mode="after")
    def _check(self) -> Self:
        if not self.days or len(set(self.days)) != len(self.days):
            raise ValueError(f"a meeting needs distinct days, not {self.days}")
        if self.starts >= self.ends:
            raise ValueError(f"a meeting must end after it starts ({self.starts}-{self.ends})")
        return self

    def overlaps(self, other: Meeting) -> bool:
        """Whether the two meetings share a day and some minutes of it."""
        shared = set(self.days) & set(other.days)
        return bool(shared) and self.starts < other.ends and other.starts < self.ends

    def __str__(self) -> str:
        days = "".join(day.value[0] + day.value[1].lower() for day in self.days)
        return f"{days} {self.starts:%H:%M}-{self.ends:%H:%M}"


def first_overlap(
    meetings: Sequence[Meeting], others: Iterable[tuple[str, Sequence[Meeting]]]
) -> str | None:
    """The key of the first of `others` (key, meetings) that overlaps `meetings`, if any."""
    for key, theirs in others:
        if any(mine.overlaps(their) for mine in meetings for their in theirs):
            return key
    return None


Prerequisites = tuple[tuple[str, ...], ...]
"""What a course requires: every group, and one course of each group
(`(("CS101", "CS100"), ("MATH120",))`: CS101 or CS100, and MATH120)."""


def missing_prerequisites(required: Prerequisites, completed: Iterable[str]) -> Prerequisites:
    """The groups of `required` that no course of `completed` satisfies."""
    done = set(completed)
    return tuple(group for group in required if not done.intersection(group))


class TimeTicket(_Value):
    """A priority group's registration time: students in the group may add from `opens_at`.

    A student is in the group when they have at least `min_earned_credits` and, if
    `level` is set, are of that level.
    """

    group: str
    opens_at: datetime
    min_earned_credits: int = 0
    level: Level | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.opens_at.tzinfo is None:
            raise ValueError(f"time ticket {self.group!r}: opens_at must be timezone-aware")
        if self.min_earned_credits < 0:
            raise ValueError(f"time ticket {self.group!r}: min_earned_credits must be >= 0")
        return self

    def admits(self, student: StudentRecord) -> bool:
        """Whether `student` belongs to this priority group."""
        level_ok = self.level is None or self.level == student.level
        return level_ok and student.earned_credits >= self.min_earned_credits


class CreditLimits(_Value):
    """The most credits a student of each level may register for in a term."""

    undergraduate: int = 18
    graduate: int = 12

    @model_validator(mode="after")
    def _check(self) -> Self:
        if min(self.undergraduate, self.graduate) < 1:
            raise ValueError(f"credit limits must be >= 1, not {self}")
        return self

    def for_level(self, level: Level) -> int:
        """The limit of a student of `level`."""
        return self.graduate if level is Level.GRADUATE else self.undergraduate


class Hold(_Value):
    """A hold the records context placed on a student (a bursar's debt, an advising hold).

    It is active from `starts_on` to `ends_on` (inclusive; open-ended if `None`) and
    blocks registration only if `blocks_registration` (a transcript hold does not).
    """

    hold_id: str
    hold_type: str
    blocks_registration: bool
    starts_on: date
    ends_on: date | None = None
    reason: str = ""

    def blocks_registration_on(self, day: date) -> bool:
        """Whether the hold stops the student adding sections on `day`."""
        ended = self.ends_on is not None and day > self.ends_on
        return self.blocks_registration and self.starts_on <= day and not ended


class StudentRecord(_Value):
    """What registration knows of an admitted student, from the records context's events."""

    student_id: str
    level: Level
    earned_credits: int = 0
    holds: tuple[Hold, ...] = ()
    completed_courses: frozenset[str] = frozenset()

    def blocking_hold(self, day: date) -> Hold | None:
        """The first hold that blocks registration on `day`, if any."""
        return next((h for h in self.holds if h.blocks_registration_on(day)), None)
