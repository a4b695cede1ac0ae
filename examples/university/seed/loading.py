"""The whole seeded term: its plan, and loading it into registration.

The term's priority groups open around `now`: graduates four days ago, then seniors,
juniors and sophomores a day apart; first-years open tomorrow (so today they are
refused, outside their window). Adding closes in two weeks, dropping in four.
"""

from __future__ import annotations

import random
import time
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from university.registration import Registration
from university.registration.application.commands import ScheduleTerm
from university.registration.domain.errors import AlreadyExists
from university.registration.domain.values import CreditLimits, Level, TimeTicket
from university.seed.catalogue import Catalogue, plan_catalogue
from university.seed.students import Students, plan_students

__all__ = ["SECTIONS_PER_BATCH", "LoadReport", "SeedPlan", "load_term", "plan_term"]

SECTIONS_PER_BATCH = 1000
"""Sections offered per transaction."""


@dataclass(frozen=True)
class SeedPlan:
    """What to load: the term, its catalogue and sections, and the students."""

    term: ScheduleTerm
    catalogue: Catalogue
    students: Students


@dataclass(frozen=True)
class LoadReport:
    """What was loaded, and how long it took (seconds)."""

    courses: int
    sections: int
    students: int
    messages: int
    """Records messages handled (0 when the plan was loaded before)."""
    catalogue_seconds: float
    students_seconds: float


def plan_term(
    *,
    seed: int = 2026,
    students: int = 3000,
    term_id: str = "2026FA",
    now: datetime | None = None,
) -> SeedPlan:
    """A term of hundreds of sections and `students` students, the same for one `seed`."""
    now = now or datetime.now(UTC)
    rng = random.Random(seed)
    catalogue = plan_catalogue(rng, term_id)
    day = timedelta(days=1)
    term = ScheduleTerm(
        command_id=f"seed:term:{term_id}",
        term_id=term_id,
        name=f"Term {term_id}",
        starts_on=(now + 21 * day).date(),
        ends_on=(now + 126 * day).date(),
        time_tickets=[
            TimeTicket(group="graduates", opens_at=now - 4 * day, level=Level.GRADUATE),
            TimeTicket(group="seniors", opens_at=now - 3 * day, min_earned_credits=90),
            TimeTicket(group="juniors", opens_at=now - 2 * day, min_earned_credits=60),
            TimeTicket(group="sophomores", opens_at=now - day, min_earned_credits=30),
            TimeTicket(group="first-years", opens_at=now + day),
        ],
        add_deadline=now + 14 * day,
        drop_deadline=now + 28 * day,
        credit_limits=CreditLimits(undergraduate=18, graduate=12),
    )
    return SeedPlan(term, catalogue, plan_students(rng, catalogue, students, now))


async def load_term(registration: Registration, plan: SeedPlan) -> LoadReport:
    """Load `plan`: the term, courses and sections in a few transactions, the students'
    records messages in one (each recorded in registration's inbox).

    The catalogue and the students outlive a term: loading a plan of another term on the
    same database finds them there, and adds the term and its sections.
    """
    started = time.perf_counter()
    await registration.schedule_term(plan.term)
    with suppress(AlreadyExists):  # the catalogue outlives terms: a later one finds it
        await registration.catalogue_courses(plan.catalogue.courses)
    sections = plan.catalogue.sections
    for start in range(0, len(sections), SECTIONS_PER_BATCH):
        await registration.offer_sections(sections[start : start + SECTIONS_PER_BATCH])
    loaded = time.perf_counter()
    handled = await registration.ingest_records(plan.students.messages)
    return LoadReport(
        courses=len(plan.catalogue.courses),
        sections=len(sections),
        students=len(plan.students.year_of),
        messages=handled,
        catalogue_seconds=loaded - started,
        students_seconds=time.perf_counter() - loaded,
    )
