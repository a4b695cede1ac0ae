"""Given/when/then tests of the `Section` aggregate: seats, the waitlist, capacity."""

from __future__ import annotations

import pytest

from eventcore.testing import AggregateScenario
from tests.examples.registration.builders import TERM, course, meeting, offered
from university.registration.domain.errors import InvalidSection, RuleBroken
from university.registration.domain.events import (
    CapacityChanged,
    SeatReleased,
    SeatTaken,
    StudentLeftWaitlist,
    StudentWaitlisted,
)
from university.registration.domain.reasons import Action
from university.registration.domain.section import Placement, Section

SECTION = "2026FA-CS101-01"


def scenario() -> AggregateScenario[Section]:
    return AggregateScenario(Section, Section.stream_id(SECTION))


def taken(student_id: str, *, from_waitlist: bool = False) -> SeatTaken:
    return SeatTaken(section_id=SECTION, student_id=student_id, from_waitlist=from_waitlist)


def waits(student_id: str) -> StudentWaitlisted:
    return StudentWaitlisted(section_id=SECTION, student_id=student_id)


def released(student_id: str, via: Action = Action.DROP) -> SeatReleased:
    return SeatReleased(section_id=SECTION, student_id=student_id, via=via)


FULL_WITH_LINE = (offered(capacity=1, waitlist_capacity=2), taken("ada"), waits("bob"))


def test_offering_a_section_records_its_course_meetings_and_seats() -> None:
    result = scenario().when_created(
        lambda: Section.offer(
            SECTION,
            term_id=TERM,
            course=course(),
            meetings=[meeting()],
            capacity=2,
            waitlist_capacity=1,
        )
    )
    result.then(offered())
    assert result.aggregate.offering.credits == 4
    assert result.aggregate.placement_for("ada") is Placement.SEAT


@pytest.mark.parametrize(("capacity", "waitlist"), [(0, 0), (-1, 3), (10, -1)])
def test_impossible_seats_are_refused(capacity: int, waitlist: int) -> None:
    scenario().when_created(
        lambda: Section.offer(
            SECTION,
            term_id=TERM,
            course=course(),
            meetings=[],
            capacity=capacity,
            waitlist_capacity=waitlist,
        )
    ).then_raises(InvalidSection, match=SECTION)


def test_a_newcomer_takes_a_free_seat() -> None:
    result = scenario().given(offered()).when(lambda s: s.take_seat("ada")).then(taken("ada"))
    assert (result.aggregate.enrolled, result.aggregate.seats_free) == ({"ada"}, 1)


def test_no_seat_is_ever_given_twice() -> None:
    given = scenario().given(offered(), taken("ada"))
    given.when(lambda s: s.take_seat("ada")).then_raises(RuleBroken, match="already")


def test_no_more_students_than_seats() -> None:
    given = scenario().given(offered(capacity=1), taken("ada"))
    assert given.when(lambda s: s.placement_for("bob")).result is Placement.WAITLIST
    again = scenario().given(offered(capacity=1), taken("ada"))
    again.when(lambda s: s.take_seat("bob")).then_raises(RuleBroken, match="no seat is free")


def test_a_newcomer_joins_the_end_of_the_line_when_no_seat_is_free() -> None:
    given = scenario().given(*FULL_WITH_LINE)
    result = given.when(lambda s: s.join_waitlist("cy")).then(waits("cy"))
    assert result.aggregate.waitlist == ["bob", "cy"]
    assert result.aggregate.position_of("cy") == 2


def test_no_more_waiting_than_the_waitlists_room() -> None:
    given = scenario().given(*FULL_WITH_LINE, waits("cy"))
    assert given.when(lambda s: s.placement_for("dan")).result is Placement.FULL
    again = scenario().given(*FULL_WITH_LINE, waits("cy"))
    again.when(lambda s: s.join_waitlist("dan")).then_raises(RuleBroken, match="no room")


def test_a_freed_seat_is_owed_to_the_line_not_to_a_newcomer() -> None:
    given = scenario().given(*FULL_WITH_LINE, released("ada"))
    result = given.when(lambda s: s.placement_for("cy"))
    assert result.result is Placement.WAITLIST
    assert result.aggregate.next_in_line == "bob"
    assert result.aggregate.placement_for("bob") is Placement.SEAT


def test_more_free_seats_than_students_waiting_leave_one_for_a_newcomer() -> None:
    given = scenario().given(
        *FULL_WITH_LINE, CapacityChanged(section_id=SECTION, capacity=3, waitlist_capacity=2)
    )
    assert given.when(lambda s: s.placement_for("cy")).result is Placement.SEAT


def test_the_head_of_the_line_is_promoted_to_a_free_seat() -> None:
    given = scenario().given(*FULL_WITH_LINE, released("ada"))
    result = given.when(lambda s: s.promote("bob")).then(taken("bob", from_waitlist=True))
    assert (result.aggregate.enrolled, result.aggregate.waitlist) == ({"bob"}, [])


def test_only_the_head_of_the_line_is_promoted_and_only_to_a_free_seat() -> None:
    given = scenario().given(*FULL_WITH_LINE, waits("cy"), released("ada"))
    given.when(lambda s: s.promote("cy")).then_raises(RuleBroken, match="not next in line")
    no_seat = scenario().given(*FULL_WITH_LINE)
    no_seat.when(lambda s: s.promote("bob")).then_raises(RuleBroken, match="not next in line")


def test_a_student_who_no_longer_qualifies_is_skipped() -> None:
    given = scenario().given(*FULL_WITH_LINE, waits("cy"), released("ada"))
    result = given.when(lambda s: s.skip("bob"))
    result.then(StudentLeftWaitlist(section_id=SECTION, student_id="bob", via=Action.PROMOTE))
    assert result.aggregate.next_in_line == "cy"


def test_a_seat_holder_drops_and_a_waiting_student_leaves() -> None:
    scenario().given(*FULL_WITH_LINE).when(lambda s: s.release_seat("ada")).then(released("ada"))
    scenario().given(*FULL_WITH_LINE).when(lambda s: s.leave_waitlist("bob")).then(
        StudentLeftWaitlist(section_id=SECTION, student_id="bob")
    )
    scenario().given(*FULL_WITH_LINE).when(lambda s: s.release_seat("bob")).then_raises(
        RuleBroken, match="holds no seat"
    )
    scenario().given(*FULL_WITH_LINE).when(lambda s: s.leave_waitlist("ada")).then_raises(
        RuleBroken, match="not waiting"
    )


def test_capacity_changes_but_never_below_who_holds_or_waits() -> None:
    given = scenario().given(offered(capacity=3, waitlist_capacity=2), taken("ada"), taken("bob"))
    given.when(lambda s: s.change_capacity(2, 0)).then(
        CapacityChanged(section_id=SECTION, capacity=2, waitlist_capacity=0)
    )
    too_small = scenario().given(offered(capacity=3), taken("ada"), taken("bob"))
    too_small.when(lambda s: s.change_capacity(1, 0)).then_raises(
        InvalidSection, match="2 students"
    )
    line = scenario().given(*FULL_WITH_LINE)
    line.when(lambda s: s.change_capacity(1, 0)).then_raises(
        InvalidSection, match="1 students wait"
    )
    same = scenario().given(offered(capacity=3, waitlist_capacity=2))
    same.when(lambda s: s.change_capacity(3, 2)).then_nothing()
