"""The registration side of the demo: a seeded term, a rush on one section, and what follows.

Seeds a term, then has students of every priority group register for the same
introductory section at the same moment; drops a seat (the waitlist process gives it
to the head of the line), swaps sections (and a swap that is refused), and reads it
all back: the audit trail, the section as it was before the drop, and now.
Registration's workers (projections, the waitlist process) must be running.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio

from university.registration import Registration
from university.registration.application.commands import (
    DropSection,
    RegisterForSection,
    SwapSections,
)
from university.registration.domain.requests import (
    Enrolled,
    Outcome,
    Refused,
    Swapped,
    Waitlisted,
)
from university.seed import SeedPlan, load_term, plan_term

__all__ = ["Tour", "run_tour"]

OVERFLOW = 10
"""Eligible students beyond the section's seats and waitlist: refused as full."""


@dataclass(frozen=True)
class Tour:
    """What the tour did, for the demo to check against records."""

    section_id: str
    enrolled: tuple[str, ...]
    dropped: str
    promoted: str


async def run_tour(registration: Registration, *, students: int = 3000) -> Tour:
    """Seed a term and tour it, printing what happens."""
    now = datetime.now(UTC)
    term_id = f"{now.year}FA-{secrets.token_hex(2)}"  # a new term each run: reruns work
    plan = plan_term(students=students, term_id=term_id, now=now)
    await _seed(registration, plan)
    section = next(s for s in plan.catalogue.sections if s.course_id == "CS101")
    rivals = _rivals(plan, section.capacity + section.waitlist_capacity + OVERFLOW)
    outcomes = await _rush(registration, term_id, section.section_id, rivals)
    _report(section.section_id, section.capacity, section.waitlist_capacity, outcomes, registration)
    seated = sorted(s for s, o in outcomes.items() if isinstance(o, Enrolled))
    before_drop = datetime.now(UTC)
    dropped, promoted = await _drop(registration, term_id, section.section_id, seated[0])
    await _swaps(registration, plan, term_id, section.section_id, seated[1])
    state = await _settled(registration, section.section_id, section.capacity)
    await _audit(registration, section.section_id, before_drop)
    return Tour(section.section_id, state, dropped, promoted)


async def _seed(registration: Registration, plan: SeedPlan) -> None:
    started = time.perf_counter()
    report = await load_term(registration, plan)
    await registration.wait_for(await registration.store.log_head(), timeout=60)
    print(
        f"Seeded term {plan.term.term_id}: {report.sections} sections of {report.courses} "
        f"courses in {plan.catalogue.departments} departments, {report.students} students "
        f"({len(plan.students.messages)} records messages) in {time.perf_counter() - started:.1f} s"
    )
    groups = ", ".join(t.group for t in plan.term.time_tickets[:-1])
    print(f"Time tickets: {groups} are open; first-years open tomorrow.")


def _rivals(plan: SeedPlan, eligible: int) -> list[str]:
    """The first students by id, until `eligible` of them may register now."""
    chosen, count = [], 0
    for student_id in sorted(plan.students.year_of):
        chosen.append(student_id)
        open_now = plan.students.year_of[student_id] != "first-year"
        count += open_now and student_id not in plan.students.held
        if count == eligible:
            return chosen
    return chosen


async def _rush(
    registration: Registration, term_id: str, section_id: str, students: list[str]
) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}

    async def register(student_id: str) -> None:
        command = RegisterForSection(term_id, student_id, section_id, actor=student_id)
        outcomes[student_id] = (await registration.register(command)).outcome

    async with anyio.create_task_group() as group:
        for student_id in students:
            group.start_soon(register, student_id)
    return outcomes


def _report(
    section_id: str,
    capacity: int,
    waitlist: int,
    outcomes: dict[str, Outcome],
    registration: Registration,
) -> None:
    kinds = Counter(type(o).__name__ for o in outcomes.values())
    reasons = Counter(o.reason.code for o in outcomes.values() if isinstance(o, Refused))
    print(
        f"{len(outcomes)} students register for {section_id} ({capacity} seats, "
        f"waitlist {waitlist}) at the same moment:"
    )
    why = ", ".join(f"{code} {n}" for code, n in sorted(reasons.items()))
    print(
        f"  enrolled {kinds[Enrolled.__name__]}, waitlisted {kinds[Waitlisted.__name__]}, "
        f"refused {kinds[Refused.__name__]} ({why})"
    )
    metrics = registration.metrics
    print(
        f"  {metrics.conflicts} conflicts in {metrics.decided} decisions (the section's "
        "commands take turns in this process)"
    )
    shown = set()
    for student_id, outcome in sorted(outcomes.items()):
        if isinstance(outcome, Refused) and outcome.reason.code not in shown:
            shown.add(outcome.reason.code)
            print(f"  {student_id}: {outcome.reason.message}")


async def _drop(
    registration: Registration, term_id: str, section_id: str, student_id: str
) -> tuple[str, str]:
    """`student_id` drops; wait for the waitlist process to seat the head of the line."""
    waiting = (await registration.queries.section_as_of(section_id)).waitlist
    await registration.drop(DropSection(term_id, student_id, section_id, actor=student_id))
    with anyio.fail_after(30):
        while True:
            if waiting[0] in (await registration.queries.section_as_of(section_id)).enrolled:
                break
            await anyio.sleep(0.02)
    print(
        f"{student_id} dropped {section_id}; the waitlist process seated {waiting[0]}, "
        "first in line."
    )
    return student_id, waiting[0]


async def _swaps(
    registration: Registration, plan: SeedPlan, term_id: str, section_id: str, student_id: str
) -> None:
    """A swap to another section of the course; then back, refused: the line is first."""
    course_id = section_id.split("-")[-2]
    other = next(
        s.section_id
        for s in plan.catalogue.sections
        if s.course_id == course_id and s.section_id != section_id
    )

    async def swap(drop: str, add: str) -> Outcome:
        command = SwapSections(term_id, student_id, drop, add, actor=student_id)
        return (await registration.swap(command)).outcome

    moved, back = await swap(section_id, other), await swap(other, section_id)
    assert isinstance(moved, Swapped)
    assert isinstance(back, Refused)
    print(
        f"{student_id} swapped {section_id} for {other}; swapping back was refused "
        f"({back.reason.code}): {other} kept."
    )


async def _settled(registration: Registration, section_id: str, capacity: int) -> tuple[str, ...]:
    """Wait until the waitlist process has filled the seats the drop and swap freed."""
    with anyio.fail_after(30):
        while True:
            state = await registration.queries.section_as_of(section_id)
            if len(state.enrolled) == capacity or not state.waitlist:
                await registration.wait_for(await registration.store.log_head(), timeout=30)
                return state.enrolled
            await anyio.sleep(0.02)


async def _audit(registration: Registration, section_id: str, before_drop: datetime) -> None:
    queries = registration.queries
    trail, cursor, rows = [], None, 0
    while True:
        page = await queries.section_audit(section_id, after=cursor, limit=200)
        trail.extend(page.items)
        rows += len(page.items)
        if (cursor := page.next_cursor) is None:
            break
    outcomes = Counter(e.outcome for e in trail)
    listed = ", ".join(f"{k} {n}" for k, n in sorted(outcomes.items()))
    print(f"Audit trail of {section_id}: {rows} requests ({listed}), e.g.:")
    examples = [next(e for e in trail if e.outcome == kind) for kind in ("enrolled", "refused")]
    for entry in sorted([*examples, trail[-1]], key=lambda e: e.position):
        print(
            f"  #{entry.position:<6} {entry.student_id} {entry.action:<8} {entry.outcome:<10} "
            f"by {entry.actor}, request ...{str(entry.correlation_id)[-12:]}: {entry.detail}"
        )
    then = await queries.section_as_of(section_id, before_drop)
    now = await queries.section_as_of(section_id)
    print(
        f"As of the drop: {len(then.enrolled)} enrolled, {len(then.waitlist)} waiting; "
        f"now: {len(now.enrolled)} enrolled, {len(now.waitlist)} waiting."
    )
