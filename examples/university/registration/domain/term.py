"""The `Term` aggregate: when each student may register, and how much.

A term has time tickets (priority groups, each opening at its own time), a deadline to
add sections and one to drop them, and credit limits per level. It is written once by
the registrar and read by every registration decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from eventcore import Aggregate, apply
from university.registration.domain.errors import InvalidTerm, RuleBroken
from university.registration.domain.events import TermScheduled
from university.registration.domain.reasons import Action, OutsideWindow
from university.registration.domain.values import CreditLimits, StudentRecord, TimeTicket

__all__ = ["RegistrationWindow", "Term"]

_ADDING = (Action.REGISTER, Action.SWAP, Action.PROMOTE)


@dataclass(frozen=True)
class RegistrationWindow:
    """When one student may add (`opens_at` to `add_closes_at`) and drop (to `drop_closes_at`)."""

    group: str
    opens_at: datetime
    add_closes_at: datetime
    drop_closes_at: datetime

    def refusal(self, action: Action, at: datetime) -> OutsideWindow | None:
        """Why `action` at `at` is outside the window (`None`: it is inside).

        A swap both drops and adds, so it needs both windows open.
        """
        closes = {
            Action.REGISTER: self.add_closes_at,
            Action.PROMOTE: self.add_closes_at,
            Action.DROP: self.drop_closes_at,
            Action.SWAP: min(self.add_closes_at, self.drop_closes_at),
        }[action]
        if self.opens_at <= at <= closes:
            return None
        return OutsideWindow(action=action, opens_at=self.opens_at, closes_at=closes, at=at)


class Term(Aggregate, aggregate_type="registration.Term"):
    """A term open for registration (stream `term:{term_id}`)."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.term_id = ""
        self.name = ""
        self.starts_on = date.min
        self.ends_on = date.min
        self.time_tickets: tuple[TimeTicket, ...] = ()
        self.add_deadline = datetime.min.replace(tzinfo=UTC)
        self.drop_deadline = datetime.min.replace(tzinfo=UTC)
        self.credit_limits = CreditLimits()

    @staticmethod
    def stream_id(term_id: str) -> str:
        """The stream of term `term_id`."""
        return f"term:{term_id}"

    @classmethod
    def schedule(
        cls,
        term_id: str,
        *,
        name: str,
        starts_on: date,
        ends_on: date,
        time_tickets: Sequence[TimeTicket],
        add_deadline: datetime,
        drop_deadline: datetime,
        credit_limits: CreditLimits | None = None,
    ) -> Term:
        """Set up a term (`InvalidTerm` if its dates or time tickets do not make sense).

        Every student must fall in some priority group, so one ticket must admit
        anyone (no minimum credits and no level).
        """
        tickets = tuple(sorted(time_tickets, key=lambda t: t.opens_at))
        _check(term_id, starts_on, ends_on, tickets, add_deadline, drop_deadline)
        term = cls(cls.stream_id(term_id))
        term.record(
            TermScheduled(
                term_id=term_id,
                name=name,
                starts_on=starts_on,
                ends_on=ends_on,
                time_tickets=tickets,
                add_deadline=add_deadline,
                drop_deadline=drop_deadline,
                credit_limits=credit_limits or CreditLimits(),
            )
        )
        return term

    def window_for(self, student: StudentRecord) -> RegistrationWindow:
        """The student's window: their earliest-opening priority group, and the deadlines."""
        tickets = [t for t in self.time_tickets if t.admits(student)]
        if not tickets:
            raise RuleBroken(self.id, f"no time ticket admits {student.student_id}")
        ticket = min(tickets, key=lambda t: t.opens_at)
        return RegistrationWindow(
            ticket.group, ticket.opens_at, self.add_deadline, self.drop_deadline
        )

    def credit_limit_for(self, student: StudentRecord) -> int:
        """The most credits `student` may register for in this term."""
        return self.credit_limits.for_level(student.level)

    @apply
    def _scheduled(self, event: TermScheduled) -> None:
        self.term_id = event.term_id
        self.name = event.name
        self.starts_on = event.starts_on
        self.ends_on = event.ends_on
        self.time_tickets = event.time_tickets
        self.add_deadline = event.add_deadline
        self.drop_deadline = event.drop_deadline
        self.credit_limits = event.credit_limits


def _check(
    term_id: str,
    starts_on: date,
    ends_on: date,
    tickets: tuple[TimeTicket, ...],
    add_deadline: datetime,
    drop_deadline: datetime,
) -> None:
    if not term_id.strip():
        raise InvalidTerm(term_id, "the term id must not be blank")
    if ends_on <= starts_on:
        raise InvalidTerm(term_id, f"ends on {ends_on}, not after it starts ({starts_on})")
    if add_deadline.tzinfo is None or drop_deadline.tzinfo is None:
        raise InvalidTerm(term_id, "deadlines must be timezone-aware")
    if not any(t.min_earned_credits == 0 and t.level is None for t in tickets):
        raise InvalidTerm(
            term_id, "one time ticket must admit every student (0 credits, any level)"
        )
    if len({t.group for t in tickets}) != len(tickets):
        raise InvalidTerm(term_id, "time ticket groups must have distinct names")
    if add_deadline <= tickets[0].opens_at:
        raise InvalidTerm(term_id, "the add deadline must come after the first ticket opens")
    if drop_deadline < add_deadline:
        raise InvalidTerm(term_id, "the drop deadline cannot come before the add deadline")
