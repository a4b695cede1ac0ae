"""The seeded students, as the records context would publish them.

Undergraduates are spread over four class years by earned credits (first-years,
sophomores, juniors, seniors), graduates have a degree behind them. Each has a major,
and has completed courses that add up to about their credits: their major's ladder
from the bottom (so prerequisites hold as they would), and introductions elsewhere.
Some have holds: most block registration (a bursar's debt, an advising appointment),
some only transcripts, and a few were lifted already.

Every message id is derived from what it says, so loading the same plan twice is
recognised by the inbox and changes nothing.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from eventcore import IntegrationEvent, Message, message_for
from university.records.contracts import (
    CourseCompleted,
    HoldLifted,
    HoldPlaced,
    StudentAdmitted,
)
from university.registration.domain.values import Prerequisites, missing_prerequisites
from university.seed.catalogue import DEPARTMENTS, Catalogue

__all__ = ["YEARS", "Students", "plan_students"]

_NAMESPACE = uuid.UUID("6b1f4c52-8e0a-4d1e-9a53-0c6f2d7e9b10")
YEARS = (("first-year", 0, 29, 0.28), ("sophomore", 30, 59, 0.25), ("junior", 60, 89, 0.24),
         ("senior", 90, 130, 0.23))  # fmt: skip
"""Undergraduate class years: name, credits from, credits to, share of undergraduates."""
_BLOCKING = (("bursar", "unpaid tuition"), ("advising", "see your advisor before registering"),
             ("immunization", "immunization record missing"))  # fmt: skip
_GRADES = ("A", "A", "A-", "B+", "B", "B", "B-", "C+", "C")


@dataclass
class Students:
    """The planned students: the records messages about them, and who is who."""

    messages: list[Message] = field(default_factory=list)
    year_of: dict[str, str] = field(default_factory=dict)
    """Each student's class year (`graduate` for graduates)."""
    held: set[str] = field(default_factory=set)
    """Students with a hold that blocks registration (and is not lifted)."""
    completed: dict[str, set[str]] = field(default_factory=dict)

    def of_year(self, year: str) -> list[str]:
        """The students of a class year, by id."""
        return sorted(s for s, y in self.year_of.items() if y == year)


def plan_students(rng: random.Random, catalogue: Catalogue, count: int, now: datetime) -> Students:
    """`count` students with their completed courses and holds, drawn from `rng`."""
    students = Students()
    ladders = _ladders(catalogue)
    intros = [c for _, ladder in sorted(ladders.items()) for c in ladder[:3]]
    credits_of = {c.course_id: c.credits for c in catalogue.courses}
    rules = {c.course_id: _groups(c.prerequisites) for c in catalogue.courses}
    weights = [share for *_, share in YEARS]
    for n in range(1, count + 1):
        student_id = f"s{n:05d}"
        graduate = rng.random() < 0.08
        if graduate:
            year, credits = "graduate", rng.randint(120, 150)
        else:
            name, low, high, _ = rng.choices(YEARS, weights)[0]
            year, credits = name, rng.randint(low, high)
        students.year_of[student_id] = year
        major = rng.choice(sorted(ladders))
        done = _completed(rng, ladders[major], intros, credits, rules)
        students.completed[student_id] = set(done)
        level = "graduate" if graduate else "undergraduate"
        _publish(students, student_id, StudentAdmitted(
            student_id=student_id, level=level, program=major, earned_credits=credits,
            revision=1, occurred_at=now))  # fmt: skip
        for course_id in done:
            _publish(students, student_id, CourseCompleted(
                student_id=student_id, course_id=course_id, term_id="earlier",
                grade=rng.choice(_GRADES), credits=credits_of[course_id],
                occurred_at=now), course_id)  # fmt: skip
        _holds(rng, students, student_id, now)
    return students


def _groups(prerequisites: Sequence[Sequence[str]]) -> Prerequisites:
    return tuple(tuple(group) for group in prerequisites)


def _ladders(catalogue: Catalogue) -> dict[str, list[str]]:
    """Each department's undergraduate courses, from the bottom of the ladder up."""
    ladders: dict[str, list[str]] = {d: [] for d in DEPARTMENTS}
    for course in catalogue.courses:
        if not course.course_id.removeprefix(course.department).startswith("5"):
            ladders[course.department].append(course.course_id)
    return ladders


def _completed(
    rng: random.Random,
    ladder: list[str],
    intros: list[str],
    credits: int,
    rules: dict[str, Prerequisites],
) -> list[str]:
    """Courses worth about `credits`: the major's ladder in order, with other
    introductions, each after its prerequisites (an introduction it needs comes first)."""
    wanted = credits // 4
    done: list[str] = []
    major = iter(ladder)
    others = rng.sample(intros, k=min(len(intros), wanted))
    while len(done) < wanted:
        course = next(major, None) if rng.random() < 0.5 or not others else None
        if course is None:
            if not others:
                break
            course = others.pop()
        missing = missing_prerequisites(rules[course], done)
        needed = [group[0] for group in missing]
        if any(missing_prerequisites(rules[n], done) for n in needed):
            continue  # not ready for it
        for course_id in [*needed, course]:
            if course_id not in done:
                done.append(course_id)
    return done


def _holds(rng: random.Random, students: Students, student_id: str, now: datetime) -> None:
    draw = rng.random()
    today = now.date()
    if draw < 0.05:
        hold_type, reason = rng.choice(_BLOCKING)
        hold_id = f"{student_id}-{hold_type}"
        _publish(students, student_id, _placed(hold_id, student_id, hold_type, ("registration",),
                                               reason, today, now), hold_id)  # fmt: skip
        if draw < 0.01:  # settled already
            _publish(students, student_id, HoldLifted(
                hold_id=hold_id, student_id=student_id, occurred_at=now), hold_id)  # fmt: skip
        else:
            students.held.add(student_id)
    elif draw < 0.08:
        hold_id = f"{student_id}-library"
        _publish(students, student_id, _placed(hold_id, student_id, "library", ("transcript",),
                                               "overdue books", today, now), hold_id)  # fmt: skip


def _placed(
    hold_id: str,
    student_id: str,
    hold_type: str,
    blocks: tuple[str, ...],
    reason: str,
    today: date,
    now: datetime,
) -> HoldPlaced:
    return HoldPlaced(
        hold_id=hold_id,
        student_id=student_id,
        hold_type=hold_type,
        blocks=blocks,
        starts_on=today - timedelta(days=30),
        reason=reason,
        occurred_at=now,
    )


def _publish(students: Students, student_id: str, event: IntegrationEvent, about: str = "") -> None:
    """Add the message of `event` (about `about`: a hold, a course) to the plan."""
    name = f"{event.integration_type_name}/{student_id}/{about}"
    message_id = uuid.uuid5(_NAMESPACE, name)
    students.messages.append(message_for(event, key=student_id, message_id=message_id))
