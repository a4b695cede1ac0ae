"""The handlers under concurrency, on SQLite and PostgreSQL: no seat given twice, no
schedule over its limits, swaps all or nothing, whatever the interleaving."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable

import anyio
import pytest

from tests.examples.registration.world import CS101_01, CS101_02, MWF, TERM, TR, World, weekly
from university.registration import Registration, bootstrap
from university.registration.application.commands import (
    CatalogueCourse,
    DropSection,
    RegisterForSection,
    SwapSections,
)
from university.registration.application.results import Decision
from university.registration.domain.requests import (
    Enrolled,
    Outcome,
    Refused,
    Swapped,
    Waitlisted,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def another_process(registration: Registration, *, locks: bool = False) -> Registration:
    """A second context on the same tables, with its own gate: as another process would be."""
    store = registration.store
    return await bootstrap(
        store.engine,
        schema=store.tables.schema,
        create_tables=False,
        clock=registration.services.clock,
        database_locks=locks,
    )


async def agree(registration: Registration, section_id: str) -> tuple[int, int]:
    """Check the section and the schedules agree; return (seated, waiting)."""
    queries = registration.queries
    section = await queries.section_as_of(section_id)
    assert not set(section.enrolled) & set(section.waitlist)
    for student_id in section.enrolled:
        assert section_id in (await queries.schedule_as_of(TERM, student_id)).enrolled
    for student_id in section.waitlist:
        assert section_id in (await queries.schedule_as_of(TERM, student_id)).waitlisted
    return len(section.enrolled), len(section.waitlist)


async def test_three_hundred_students_on_five_sections_of_thirty_seats(world: World) -> None:
    sections = [f"{TERM}-HOT{n}-01" for n in range(5)]
    for n, section_id in enumerate(sections):
        await world.offer(
            section_id,
            "CS101" if n == 0 else "MATH101",
            weekly(MWF, 8 + n),
            capacity=30,
            waitlist=10,
        )
    students = [f"h{n:03d}" for n in range(300)]
    await world.admit(*students)
    registration = world.registration
    outcomes: Counter[str] = Counter()

    async def register(n: int) -> None:
        command = RegisterForSection(TERM, students[n], sections[n % 5], actor=students[n])
        outcome = (await registration.register(command)).outcome
        reason = outcome.reason.code if isinstance(outcome, Refused) else ""
        outcomes[f"{type(outcome).__name__} {reason}".strip()] += 1

    async with anyio.create_task_group() as group:
        for n in range(300):
            group.start_soon(register, n)

    assert outcomes == {"Enrolled": 150, "Waitlisted": 50, "Refused section-full": 100}
    for section_id in sections:
        assert await agree(registration, section_id) == (30, 10)
    assert registration.metrics.decided == 300
    assert registration.metrics.conflicts == 0  # one section's commands take turns here


async def test_racing_processes_conflict_but_never_overbook(world: World) -> None:
    """Two contexts (as two processes) with no turns between them: conflicts are retried."""
    await world.offer(f"{TERM}-RACE-01", "PHYS101", weekly(TR, 8), capacity=10, waitlist=5)
    students = [f"r{n:02d}" for n in range(40)]
    await world.admit(*students)
    other = await another_process(world.registration)
    contexts = [world.registration, other]
    outcomes: Counter[str] = Counter()

    async def register(n: int) -> None:
        command = RegisterForSection(TERM, students[n], f"{TERM}-RACE-01")
        outcomes[type((await contexts[n % 2].register(command)).outcome).__name__] += 1

    try:
        async with anyio.create_task_group() as group:
            for n in range(40):
                group.start_soon(register, n)
    finally:
        await other.aclose()
    assert outcomes == {"Enrolled": 10, "Waitlisted": 5, "Refused": 25}
    assert await agree(world.registration, f"{TERM}-RACE-01") == (10, 5)


async def test_with_database_locks_processes_take_turns_too(world: World) -> None:
    """Two contexts with PostgreSQL advisory locks: no conflicts, and promotions still run."""
    section_id = f"{TERM}-LOCK-01"
    await world.offer(section_id, "PHYS101", weekly(TR, 8), capacity=10, waitlist=5)
    students = [f"k{n:02d}" for n in range(40)]
    await world.admit(*students)
    first, second = [await another_process(world.registration, locks=True) for _ in range(2)]
    outcomes: Counter[str] = Counter()

    async def register(n: int) -> None:
        command = RegisterForSection(TERM, students[n], section_id)
        outcomes[type((await (first, second)[n % 2].register(command)).outcome).__name__] += 1

    try:
        async with anyio.create_task_group() as group:
            for n in range(40):
                group.start_soon(register, n)
        seated = (await first.queries.section_as_of(section_id)).enrolled
        await second.drop(DropSection(TERM, seated[0], section_id))
        await first.catch_up()
    finally:
        await first.aclose()
        await second.aclose()
    assert outcomes == {"Enrolled": 10, "Waitlisted": 5, "Refused": 25}
    assert first.metrics.conflicts + second.metrics.conflicts == 0
    assert await agree(world.registration, section_id) == (10, 4)


async def test_one_student_racing_for_many_sections_stays_within_the_limits(
    world: World,
) -> None:
    """Six 4-credit sections at once (the limit is 12), two pairs at the same time."""
    sections = []
    for n, (days, hour) in enumerate([(MWF, 8), (MWF, 8), (TR, 9), (TR, 9), (MWF, 13), (TR, 15)]):
        course = f"C{n}01"
        sections.append(f"{TERM}-{course}-01")
        await world.registration.catalogue_courses(
            [CatalogueCourse(course_id=course, title=course, department="C", credits=4)]
        )
        await world.offer(sections[-1], course, weekly(days, hour), capacity=5)
    await world.admit("ada")
    other = await another_process(world.registration)
    results = []

    async def register(n: int) -> None:
        context = (world.registration, other)[n % 2]
        results.append(
            (await context.register(RegisterForSection(TERM, "ada", sections[n]))).outcome
        )

    try:
        async with anyio.create_task_group() as group:
            for n in range(6):
                group.start_soon(register, n)
    finally:
        await other.aclose()
    schedule = await world.registration.queries.schedule_as_of(TERM, "ada")
    assert schedule.credits <= 12
    assert len([r for r in results if isinstance(r, Enrolled)]) == len(schedule.enrolled) == 3
    assert not {sections[0], sections[1]} <= set(schedule.enrolled)  # same time
    assert not {sections[2], sections[3]} <= set(schedule.enrolled)
    for section_id in sections:
        seated = "ada" in (await world.registration.queries.section_as_of(section_id)).enrolled
        assert seated == (section_id in schedule.enrolled)


async def race(*decisions: Awaitable[Decision[Outcome]]) -> list[Outcome]:
    """Run the commands at once; their outcomes, in the order given."""
    outcomes: dict[int, Outcome] = {}

    async def run(n: int, decision: Awaitable[Decision[Outcome]]) -> None:
        outcomes[n] = (await decision).outcome

    async with anyio.create_task_group() as group:
        for n, decision in enumerate(decisions):
            group.start_soon(run, n, decision)
    return [outcomes[n] for n in range(len(decisions))]


async def test_a_swap_racing_for_the_last_seat_is_all_or_nothing(world: World) -> None:
    registration = world.registration
    other = await another_process(registration)
    try:
        for round_ in range(4):
            target = f"{TERM}-LAST{round_}-01"
            await world.offer(target, "PHYS101", weekly(TR, 8), capacity=1)
            swapper, rival = f"s{round_}", f"v{round_}"
            await world.admit(swapper, rival)
            await registration.register(RegisterForSection(TERM, swapper, CS101_02))
            swap = SwapSections(TERM, swapper, CS101_02, target)
            rivalling = RegisterForSection(TERM, rival, target)
            outcomes = await race(registration.swap(swap), other.register(rivalling))
            schedule = await registration.queries.schedule_as_of(TERM, swapper)
            seated = (await registration.queries.section_as_of(target)).enrolled
            if isinstance(outcomes[0], Swapped):
                assert schedule.enrolled == (target,)
                assert seated == (swapper,)
                assert not isinstance(outcomes[1], Enrolled)
            else:
                assert schedule.enrolled == (CS101_02,)  # kept what they had
                assert seated == (rival,)
                assert isinstance(outcomes[1], Enrolled | Waitlisted)
            assert (swapper in (await registration.queries.section_as_of(CS101_02)).enrolled) == (
                CS101_02 in schedule.enrolled
            )
    finally:
        await other.aclose()
    assert (await registration.queries.section_as_of(CS101_01)).enrolled == ()
