"""`Enrolment`: a student's standing in one section, as the records context knows it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = ["Enrolment", "Standing"]


class Standing(StrEnum):
    """Where a student stands in a section."""

    ENROLLED = "enrolled"
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True)
class Enrolment:
    """A student's standing in a section after registration's `sequence`-th change to it.

    Records keeps one per student and section: the newest it has heard of. Brokers may
    deliver a section's changes late or out of order (a retried message goes to the
    back of the queue), so a change replaces the one kept only if it `supersedes` it.
    """

    student_id: str
    section_id: str
    standing: Standing
    sequence: int
    changed_at: datetime

    @property
    def is_enrolled(self) -> bool:
        """True while the student holds a seat in the section."""
        return self.standing is Standing.ENROLLED

    def supersedes(self, kept: Enrolment | None) -> bool:
        """Whether this change is newer than `kept` (the one records holds, if any)."""
        return kept is None or self.sequence > kept.sequence
