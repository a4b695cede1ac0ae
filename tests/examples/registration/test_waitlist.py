"""The waitlist process: a freed seat goes to the first waiting student who still qualifies."""

from __future__ import annotations

import anyio
import pytest

from tests.examples.registration.world import CS101_01, MATH101_01, MWF, TERM, World, weekly
from tests.messaging._wait import eventually
from university.registration.application.commands import (
    ChangeCapacity,
    DropSection,
    RegisterForSection,
)
from university.registration.application.waitlist import ACTOR
from university.registration.domain.events import SeatTaken, WaitlistSkipped
from university.registration.domain.reasons import TimeConflict
from university.registration.domain.schedule import Schedule
from university.registration.domain.section import Section

pytestmark = pytest.mark.anyio


async def fill(world: World, *students: str) -> None:
    """`students` register for CS101-01 in order (2 seats, then 2 waiting)."""
    await world.admit(*students)
    for student_id in students:
        await world.registration.register(RegisterForSection(TERM, student_id, CS101_01))


async def test_a_dropped_seat_goes_to_the_head_of_the_line(world: World) -> None:
    await fill(world, "ada", "bob", "cy", "dan")
    registration = world.registration
    drop = DropSection(TERM, "ada", CS101_01, actor="ada", correlation_id="request-7")
    await registration.drop(drop)

    await registration.catch_up()

    section = await registration.queries.section_as_of(CS101_01)
    assert (section.enrolled, section.waitlist) == (("bob", "cy"), ("dan",))
    [*_, promoted] = await registration.store.read_stream(Section.stream_id(CS101_01))
    assert promoted.event == SeatTaken(section_id=CS101_01, student_id="cy", from_waitlist=True)
    assert promoted.metadata.actor == ACTOR
    assert promoted.correlation_id == "request-7"  # the drop's conversation
    schedule = await registration.queries.schedule_as_of(TERM, "cy")
    assert (schedule.enrolled, schedule.waitlisted) == ((CS101_01,), ())
    assert await registration.catch_up() == 0  # nothing more to do: it happens once


async def test_a_student_who_no_longer_qualifies_is_skipped_and_told_why(world: World) -> None:
    await fill(world, "ada", "bob", "cy", "dan")
    registration = world.registration
    await registration.register(RegisterForSection(TERM, "cy", MATH101_01))  # same time

    await registration.drop(DropSection(TERM, "ada", CS101_01))
    await registration.catch_up()

    section = await registration.queries.section_as_of(CS101_01)
    assert (section.enrolled, section.waitlist) == (("bob", "dan"), ())
    history = await registration.store.read_stream(Schedule.stream_id(TERM, "cy"))
    skipped = history[-1].event
    assert skipped == WaitlistSkipped(
        term_id=TERM,
        student_id="cy",
        section_id=CS101_01,
        reason=TimeConflict(with_section_id=MATH101_01),
    )
    audit = await registration.queries.student_audit("cy")
    assert [(e.outcome, e.reason_code) for e in audit.items][-1] == ("skipped", "time-conflict")


async def test_a_hold_placed_while_waiting_skips_the_student(world: World) -> None:
    await fill(world, "ada", "bob", "cy", "dan")
    await world.hold("cy")
    await world.registration.drop(DropSection(TERM, "bob", CS101_01))
    await world.registration.catch_up()
    section = await world.registration.queries.section_as_of(CS101_01)
    assert (section.enrolled, section.waitlist) == (("ada", "dan"), ())


async def test_more_seats_go_down_the_line(world: World) -> None:
    await fill(world, "ada", "bob", "cy", "dan")
    await world.registration.change_capacity(
        ChangeCapacity(section_id=CS101_01, capacity=5, waitlist_capacity=2)
    )
    await world.registration.catch_up()
    section = await world.registration.queries.section_as_of(CS101_01)
    assert (section.enrolled, section.waitlist) == (("ada", "bob", "cy", "dan"), ())


async def test_the_process_runs_on_its_own_while_students_keep_registering(world: World) -> None:
    """Live: drops and registrations race the promotions; the section never breaks."""
    section_id = f"{TERM}-LIVE-01"
    await world.offer(section_id, "PHYS101", weekly(MWF, 15), capacity=5, waitlist=20)
    students = [f"w{n:02d}" for n in range(20)]
    await world.admit(*students)
    registration = world.registration
    for student_id in students:
        await registration.register(RegisterForSection(TERM, student_id, section_id))

    async with anyio.create_task_group() as group:
        group.start_soon(registration.run_workers)
        async with anyio.create_task_group() as students_act:
            for student_id in students[:4]:
                students_act.start_soon(
                    registration.drop, DropSection(TERM, student_id, section_id)
                )

        async def moved_on() -> bool:
            state = await registration.queries.section_as_of(section_id)
            return state.waitlist[:1] == ("w09",)

        await eventually(moved_on, seconds=30)
        group.cancel_scope.cancel()
    state = await registration.queries.section_as_of(section_id)
    assert state.enrolled == tuple(sorted(students[4:9]))
    assert len(state.waitlist) == 11
