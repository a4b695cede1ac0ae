"""The student's commands end to end, on SQLite and PostgreSQL: decisions, what they record,
and where (refusals in the schedule's stream, never the section's)."""

from __future__ import annotations

import pytest

from tests.examples.registration.world import (
    CS101_01,
    CS101_02,
    CS201_01,
    DAY,
    MATH101_01,
    MWF,
    TERM,
    World,
    weekly,
)
from university.registration.application.commands import (
    ChangeCapacity,
    DropSection,
    OfferSection,
    RegisterForSection,
    ScheduleTerm,
    SwapSections,
)
from university.registration.domain.errors import AlreadyExists, InvalidSection, NotFound
from university.registration.domain.reasons import (
    NoSeatForSwap,
    NotRegistered,
    RegistrationHold,
    SectionNotFound,
    StudentNotAdmitted,
    TimeConflict,
)
from university.registration.domain.requests import (
    Dropped,
    Enrolled,
    Refused,
    Swapped,
    Waitlisted,
)
from university.registration.domain.schedule import Schedule
from university.registration.domain.section import Section

pytestmark = pytest.mark.anyio


def register(student_id: str, section_id: str, **options: str) -> RegisterForSection:
    return RegisterForSection(TERM, student_id, section_id, actor=student_id, **options)


async def streams(world: World, stream_id: str) -> list[str]:
    return [r.event_type for r in await world.registration.store.read_stream(stream_id)]


async def test_students_are_enrolled_then_waitlisted_then_refused(world: World) -> None:
    await world.admit("ada", "bob", "cy", "dan", "eve")
    outcomes = [
        (await world.registration.register(register(s, CS101_01))).outcome
        for s in ("ada", "bob", "cy", "dan", "eve")
    ]
    assert outcomes[:4] == [
        Enrolled(CS101_01),
        Enrolled(CS101_01),
        Waitlisted(CS101_01, 1),
        Waitlisted(CS101_01, 2),
    ]
    assert isinstance(outcomes[4], Refused)
    assert outcomes[4].reason.code == "section-full"
    assert await streams(world, Section.stream_id(CS101_01)) == [
        "registration.SectionOffered",
        *["registration.SeatTaken"] * 2,
        *["registration.StudentWaitlisted"] * 2,
    ]  # the refusal is not in the section's stream...
    assert await streams(world, Schedule.stream_id(TERM, "eve")) == [
        "registration.ScheduleOpened",
        "registration.RequestRefused",
    ]  # ...but in the student's


async def test_a_decision_carries_its_command_correlation_and_actor(world: World) -> None:
    await world.admit("ada")
    command = register("ada", CS101_01, correlation_id="request-42")
    decision = await world.registration.register(command)

    assert decision.command_id == command.command_id
    assert decision.position > 0
    [*_, seat] = await world.registration.store.read_stream(Section.stream_id(CS101_01))
    assert seat.metadata.actor == "ada"
    assert (seat.correlation_id, seat.causation_id) == ("request-42", command.command_id)
    assert seat.global_position <= decision.position


async def test_every_refusal_has_its_typed_reason_and_is_recorded(world: World) -> None:
    await world.admit("ada", "bob")
    await world.admit("fresh", credits=10)
    await world.hold("bob")
    registration = world.registration

    async def refusal(command: RegisterForSection) -> Refused:
        outcome = (await registration.register(command)).outcome
        assert isinstance(outcome, Refused)
        return outcome

    assert (await refusal(register("nobody", CS101_01))).reason == StudentNotAdmitted(
        student_id="nobody"
    )
    assert (await refusal(register("fresh", CS101_01))).reason.code == "outside-window"
    hold = (await refusal(register("bob", CS101_01))).reason
    assert isinstance(hold, RegistrationHold)
    assert hold.reason == "unpaid tuition"
    assert (await refusal(register("ada", CS201_01))).reason.code == "prerequisite-missing"
    assert (await refusal(register("ada", "2026FA-NOPE-01"))).reason == SectionNotFound(
        section_id="2026FA-NOPE-01", term_id=TERM
    )
    await registration.register(register("ada", CS101_01))
    assert (await refusal(register("ada", CS101_01))).reason.code == "already-registered"
    assert (await refusal(register("ada", CS101_02))).reason.code == "duplicate-course"
    assert (await refusal(register("ada", MATH101_01))).reason == TimeConflict(
        with_section_id=CS101_01
    )
    history = await registration.queries.schedule_history(TERM, "ada")
    assert [h.event_type for h in history].count("registration.RequestRefused") == 5


async def test_a_lifted_hold_no_longer_refuses(world: World) -> None:
    await world.admit("bob")
    await world.hold("bob")
    await world.hold("bob", lifted=True)
    assert (await world.registration.register(register("bob", CS101_01))).outcome == Enrolled(
        CS101_01
    )


async def test_a_completed_prerequisite_is_learnt_from_records(world: World) -> None:
    await world.admit("ada", completed=("CS101",))
    decision = await world.registration.register(register("ada", CS201_01))
    assert decision.outcome == Enrolled(CS201_01)


async def test_the_time_ticket_opens_with_the_clock(world: World) -> None:
    await world.admit("fresh", credits=10)
    refused = await world.registration.register(register("fresh", CS101_02))
    assert refused.refused
    world.clock.now += 2 * DAY
    assert (await world.registration.register(register("fresh", CS101_02))).outcome == Enrolled(
        CS101_02
    )


async def test_a_student_drops_a_seat_or_a_place_in_line(world: World) -> None:
    await world.admit("ada", "bob", "cy")
    for student_id in ("ada", "bob", "cy"):
        await world.registration.register(register(student_id, CS101_01))
    registration = world.registration

    drop = await registration.drop(DropSection(TERM, "cy", CS101_01, actor="cy"))
    assert drop.outcome == Dropped(CS101_01, was_waitlisted=True)
    drop = await registration.drop(DropSection(TERM, "ada", CS101_01, actor="ada"))
    assert drop.outcome == Dropped(CS101_01)
    again = await registration.drop(DropSection(TERM, "ada", CS101_01, actor="ada"))
    assert again.outcome == Refused(CS101_01, NotRegistered(section_id=CS101_01))
    section = await registration.queries.section_as_of(CS101_01)
    assert (section.enrolled, section.waitlist) == (("bob",), ())


async def test_a_swap_moves_a_student_in_one_decision(world: World) -> None:
    await world.admit("ada")
    registration = world.registration
    await registration.register(register("ada", CS101_01))

    swap = await registration.swap(SwapSections(TERM, "ada", CS101_01, CS101_02, actor="ada"))

    assert swap.outcome == Swapped(dropped=CS101_01, added=CS101_02)
    assert (await registration.queries.schedule_as_of(TERM, "ada")).enrolled == (CS101_02,)
    assert (await registration.queries.section_as_of(CS101_01)).enrolled == ()
    [*_, released] = await registration.store.read_stream(Section.stream_id(CS101_01))
    [*_, taken] = await registration.store.read_stream(Section.stream_id(CS101_02))
    assert max(released.global_position, taken.global_position) == swap.position
    assert released.causation_id == taken.causation_id == swap.command_id


async def test_a_refused_swap_keeps_the_seat_held(world: World) -> None:
    await world.admit("ada", "bob", "cy")
    registration = world.registration
    await registration.register(register("ada", CS101_02))
    for student_id in ("bob", "cy"):
        await registration.register(register(student_id, CS101_01))  # now full

    swap = await registration.swap(SwapSections(TERM, "ada", CS101_02, CS101_01, actor="ada"))

    assert swap.outcome == Refused(CS101_01, NoSeatForSwap(section_id=CS101_01))
    assert (await registration.queries.schedule_as_of(TERM, "ada")).enrolled == (CS101_02,)
    assert "ada" in (await registration.queries.section_as_of(CS101_02)).enrolled


async def test_the_registrars_mistakes_are_errors_and_record_nothing(world: World) -> None:
    registration = world.registration
    with pytest.raises(NotFound, match="term 'NOPE'"):
        await registration.register(RegisterForSection("NOPE", "ada", CS101_01))
    with pytest.raises(AlreadyExists, match="section '2026FA-CS101-01'"):
        await world.offer(CS101_01, "CS101", weekly(MWF, 9), capacity=3)
    with pytest.raises(NotFound, match="course 'NOPE101'"):
        await registration.offer_sections(
            [
                OfferSection(
                    section_id="x", term_id=TERM, course_id="NOPE101", meetings=[], capacity=1
                )
            ]
        )
    with pytest.raises(InvalidSection, match="capacity 0"):
        await registration.change_capacity(
            ChangeCapacity(section_id=CS101_01, capacity=0, waitlist_capacity=0)
        )
    [scheduled] = await registration.store.read_stream("term:2026FA")
    with pytest.raises(AlreadyExists, match="term '2026FA'"):
        await registration.schedule_term(ScheduleTerm(**dict(scheduled.event)))
    assert await streams(world, Section.stream_id(CS101_01)) == ["registration.SectionOffered"]
