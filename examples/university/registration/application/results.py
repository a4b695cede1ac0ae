"""What a command answers: a `Decision` for a student's request, `Accepted` for the registrar's.

A refusal is an answer, not an error: `Decision.outcome` is the domain's `Enrolled`,
`Waitlisted`, `Dropped`, `Swapped` or `Refused` (with its typed reason), and the refusal
is recorded like any other outcome. Errors (`RegistrationError`) are for requests that
could not be taken at all (an unknown term, bad input from the registrar).

Both carry `position`, the global log position of the last event the command
committed: wait for the read models to reach it (`Registration.wait_for`) to read
your own writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from eventcore import AppendResult
from university.registration.domain.requests import (
    Dropped,
    Enrolled,
    Outcome,
    Refused,
    Swapped,
    Waitlisted,
)

__all__ = [
    "Accepted",
    "Decision",
    "DropDecision",
    "RegistrationDecision",
    "SwapDecision",
    "last_position",
]

OutcomeT = TypeVar("OutcomeT", bound=Outcome, covariant=True)


@dataclass(frozen=True)
class Decision(Generic[OutcomeT]):
    """The outcome of a student's request, and where its events are in the log."""

    outcome: OutcomeT
    command_id: str
    position: int

    @property
    def refused(self) -> bool:
        """Whether the request was refused (`outcome` is a `Refused`)."""
        return isinstance(self.outcome, Refused)


RegistrationDecision = Decision[Enrolled | Waitlisted | Refused]
DropDecision = Decision[Dropped | Refused]
SwapDecision = Decision[Swapped | Refused]


@dataclass(frozen=True)
class Accepted:
    """A registrar's command took effect."""

    command_id: str
    position: int


def last_position(results: Sequence[AppendResult]) -> int:
    """The highest global position among `results` (0 if nothing was appended)."""
    return max((max(r.global_positions, default=0) for r in results), default=0)
