"""The queries: read models kept by projections, and the streams' past (as of, history)."""

from __future__ import annotations

from datetime import timedelta

import anyio
import pytest

from tests.examples.registration.world import (
    CS101_01,
    CS101_02,
    CS201_01,
    MATH101_01,
    TERM,
    World,
)
from university.registration.application.commands import (
    DropSection,
    RegisterForSection,
    SwapSections,
)
from university.registration.application.views import SectionSearch
from university.registration.domain.errors import NotFound

pytestmark = pytest.mark.anyio


async def busy_section(world: World) -> None:
    """ada and bob take CS101-01's seats, cy and dan wait, eve is refused; ada drops."""
    await world.admit("ada", "bob", "cy", "dan", "eve")
    for student_id in ("ada", "bob", "cy", "dan", "eve"):
        command = RegisterForSection(TERM, student_id, CS101_01, actor=student_id)
        await world.registration.register(command)


async def test_availability_comes_from_the_read_model(world: World) -> None:
    await busy_section(world)
    registration = world.registration
    await registration.catch_up()

    section = await registration.queries.section(CS101_01)

    assert (section.capacity, section.enrolled, section.waitlisted) == (2, 2, 2)
    assert (section.seats_open, section.version) == (0, 5)
    assert (section.title, section.department, section.credits) == ("Programming", "CS", 4)
    assert str(section.meetings[0]) == "MoWeFr 09:00-09:50"
    with pytest.raises(NotFound):
        await registration.queries.section("nope")


async def test_search_filters_and_pages_through_the_catalogue(world: World) -> None:
    await busy_section(world)
    registration = world.registration
    await registration.catch_up()
    queries = registration.queries

    everything = await queries.search(SectionSearch(term_id=TERM, limit=100))
    assert [s.section_id for s in everything.items] == [CS101_01, CS101_02, CS201_01, MATH101_01]
    assert everything.next_cursor is None
    pages, cursor = [], None
    while True:
        page = await queries.search(SectionSearch(term_id=TERM, limit=3, after=cursor))
        pages.append([s.section_id for s in page.items])
        if (cursor := page.next_cursor) is None:
            break
    assert pages == [[CS101_01, CS101_02, CS201_01], [MATH101_01]]
    by_department = await queries.search(SectionSearch(term_id=TERM, department="MATH"))
    assert [s.section_id for s in by_department.items] == [MATH101_01]
    by_title = await queries.search(SectionSearch(term_id=TERM, text="data struct"))
    assert [s.section_id for s in by_title.items] == [CS201_01]
    open_cs101 = await queries.search(
        SectionSearch(term_id=TERM, course_id="CS101", open_only=True)
    )
    assert [s.section_id for s in open_cs101.items] == [CS101_02]
    assert (await queries.search(SectionSearch(term_id="OTHER"))).items == []


async def test_a_students_schedule_comes_from_the_read_model(world: World) -> None:
    await busy_section(world)
    registration = world.registration
    await registration.register(RegisterForSection(TERM, "cy", MATH101_01))
    await registration.catch_up()

    cy = await registration.queries.schedule(TERM, "cy")
    assert [(e.section_id, e.status) for e in cy.entries] == [
        (CS101_01, "waitlisted"),
        (MATH101_01, "enrolled"),
    ]
    assert cy.credits == 4
    await registration.drop(DropSection(TERM, "cy", CS101_01))
    await registration.catch_up()
    assert [e.section_id for e in (await registration.queries.schedule(TERM, "cy")).entries] == [
        MATH101_01
    ]
    assert (await registration.queries.schedule(TERM, "nobody")).entries == []


async def test_the_audit_trail_has_every_attempt_with_who_and_through_which_request(
    world: World,
) -> None:
    await busy_section(world)
    registration = world.registration
    await registration.register(RegisterForSection(TERM, "fay", CS101_01, correlation_id="req-9"))
    await registration.catch_up()

    trail = await registration.queries.section_audit(CS101_01)

    rows = [(e.student_id, e.outcome, e.reason_code) for e in trail.items]
    assert rows == [
        ("ada", "enrolled", None),
        ("bob", "enrolled", None),
        ("cy", "waitlisted", None),
        ("dan", "waitlisted", None),
        ("eve", "refused", "section-full"),
        ("fay", "refused", "student-not-admitted"),
    ]
    eve, fay = trail.items[-2:]
    assert (eve.actor, eve.action) == ("eve", "register")
    assert "full" in eve.detail
    assert fay.correlation_id == "req-9"
    first = await registration.queries.section_audit(CS101_01, limit=4)
    rest = await registration.queries.section_audit(CS101_01, after=first.next_cursor)
    assert [e.position for e in first.items + rest.items] == [e.position for e in trail.items]
    assert rest.next_cursor is None


async def test_a_swap_shows_in_both_sections_and_the_students_trail(world: World) -> None:
    await world.admit("ada")
    registration = world.registration
    await registration.register(RegisterForSection(TERM, "ada", CS101_02))
    await registration.swap(SwapSections(TERM, "ada", CS101_02, CS101_01))
    await registration.swap(SwapSections(TERM, "ada", CS101_01, CS201_01))  # refused
    await registration.catch_up()

    mine = await registration.queries.student_audit("ada", term_id=TERM)
    assert [(e.section_id, e.action, e.outcome) for e in mine.items] == [
        (CS101_02, "register", "enrolled"),
        (CS101_02, "swap", "dropped"),
        (CS101_01, "swap", "enrolled"),
        (CS201_01, "swap", "refused"),
    ]
    about_cs101_01 = await registration.queries.section_audit(CS101_01)
    assert [e.outcome for e in about_cs101_01.items] == ["enrolled", "refused"]  # to, and from


async def test_a_section_and_a_schedule_as_they_were_at_a_moment(world: World) -> None:
    await busy_section(world)
    registration = world.registration
    history = await registration.store.read_stream(f"section:{CS101_01}")
    before_drop = history[-1].recorded_at
    await anyio.sleep(0.01)  # a later moment for the drop
    await registration.drop(DropSection(TERM, "ada", CS101_01))
    await registration.catch_up()
    queries = registration.queries

    then = await queries.section_as_of(CS101_01, before_drop)
    now = await queries.section_as_of(CS101_01)
    assert (then.enrolled, then.waitlist, then.version) == (("ada", "bob"), ("cy", "dan"), 5)
    assert (now.enrolled, now.waitlist) == (("bob", "cy"), ("dan",))
    ada_then = await queries.schedule_as_of(TERM, "ada", before_drop)
    assert (ada_then.enrolled, ada_then.credits) == ((CS101_01,), 4)
    assert (await queries.schedule_as_of(TERM, "ada")).enrolled == ()
    with pytest.raises(NotFound, match="section"):
        await queries.section_as_of(CS101_01, history[0].recorded_at - timedelta(days=1))


async def test_the_history_of_a_stream_says_who_did_what(world: World) -> None:
    await busy_section(world)
    registration = world.registration
    await registration.drop(DropSection(TERM, "ada", CS101_01, actor="ada"))
    await registration.catch_up()

    history = await registration.queries.section_history(CS101_01)

    assert [h.event_type.removeprefix("registration.") for h in history] == [
        "SectionOffered",
        "SeatTaken",
        "SeatTaken",
        "StudentWaitlisted",
        "StudentWaitlisted",
        "SeatReleased",
        "SeatTaken",
    ]
    assert [h.actor for h in history[-2:]] == ["ada", "registration.waitlist"]
    assert history[-1].data == {"section_id": CS101_01, "student_id": "cy", "from_waitlist": True}
    assert history[-1].correlation_id == history[-2].correlation_id
    ada = await registration.queries.schedule_history(TERM, "ada")
    assert [h.event_type for h in ada][-1] == "registration.SectionDropped"
    with pytest.raises(NotFound):
        await registration.queries.section_history("nope")


async def test_a_decision_can_be_read_back_once_the_read_models_reach_it(world: World) -> None:
    await world.admit("ada")
    registration = world.registration
    async with anyio.create_task_group() as group:
        group.start_soon(registration.run_workers)
        decision = await registration.register(RegisterForSection(TERM, "ada", CS101_02))
        await registration.wait_for(decision.position)
        assert (await registration.queries.section(CS101_02)).enrolled == 1
        group.cancel_scope.cancel()
