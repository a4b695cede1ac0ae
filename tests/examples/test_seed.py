"""The seeded term: deterministic, realistic, and loaded through registration's front door."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from university.registration import bootstrap
from university.registration.application.commands import RegisterForSection
from university.registration.application.views import SectionSearch
from university.registration.domain.requests import Enrolled, Refused
from university.seed import load_term, plan_term

NOW = datetime(2026, 8, 20, 9, 0, tzinfo=UTC)


def test_the_same_seed_plans_the_same_term() -> None:
    first, second = plan_term(students=200, now=NOW), plan_term(students=200, now=NOW)
    assert first.catalogue == second.catalogue
    assert [m.message_id for m in first.students.messages] == [
        m.message_id for m in second.students.messages
    ]
    other = plan_term(seed=7, students=200, now=NOW)
    assert other.catalogue != first.catalogue


def test_the_default_term_is_a_realistic_one() -> None:
    plan = plan_term(now=NOW)
    catalogue, students = plan.catalogue, plan.students
    assert catalogue.departments == 14
    assert 150 <= len(catalogue.courses) <= 250
    assert 300 <= len(catalogue.sections) <= 700
    assert len(students.year_of) == 3000
    years = Counter(students.year_of.values())
    assert set(years) == {"first-year", "sophomore", "junior", "senior", "graduate"}
    assert all(count > 150 for count in years.values())
    assert 50 < len(students.held) < 300
    course_ids = {c.course_id for c in catalogue.courses}
    required = {c for course in catalogue.courses for group in course.prerequisites for c in group}
    assert required <= course_ids
    assert sum(1 for c in catalogue.courses if c.prerequisites) > 100
    assert all(s.capacity >= 10 and s.meetings for s in catalogue.sections)


def test_completed_courses_respect_their_prerequisites() -> None:
    plan = plan_term(students=500, now=NOW)
    rules = {c.course_id: c.prerequisites for c in plan.catalogue.courses}
    for done in plan.students.completed.values():
        for course_id in done:
            assert all(set(group) & done for group in rules[course_id]), course_id


@pytest.mark.anyio
@pytest.mark.slow
async def test_the_term_loads_and_students_register_by_their_priority_group(
    tmp_path: Path,
) -> None:
    plan = plan_term(students=400, now=NOW)
    url = f"sqlite+aiosqlite:///{tmp_path / 'seed.db'}"
    async with await bootstrap(url, clock=lambda: NOW) as registration:
        report = await load_term(registration, plan)
        assert (report.sections, report.students) == (len(plan.catalogue.sections), 400)
        assert report.messages == len(plan.students.messages)
        await registration.catch_up()
        listed, cursor = 0, None
        while True:  # pages of at most 200
            search = SectionSearch(term_id="2026FA", limit=500, after=cursor)
            page = await registration.queries.search(search)
            listed += len(page.items)
            if (cursor := page.next_cursor) is None:
                break
        assert listed == len(plan.catalogue.sections)
        intro = next(s for s in plan.catalogue.sections if s.course_id == "CS101")
        students = plan.students
        senior = next(s for s in students.of_year("senior") if s not in students.held)
        first_year = next(s for s in students.of_year("first-year") if s not in students.held)
        held = sorted(students.held)[0]

        async def outcome(student_id: str) -> object:
            command = RegisterForSection("2026FA", student_id, intro.section_id)
            return (await registration.register(command)).outcome

        assert await outcome(senior) == Enrolled(intro.section_id)
        refused = await outcome(first_year)
        assert isinstance(refused, Refused)
        assert refused.reason.code == "outside-window"
        held_outcome = await outcome(held)
        assert isinstance(held_outcome, Refused)
        assert held_outcome.reason.code in ("hold", "outside-window")

        again = await registration.ingest_records(plan.students.messages)
        assert again == 0  # loading the same students twice changes nothing
