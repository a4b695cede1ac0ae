"""Given/when/then: dropping, swapping, and the waitlist's promotions, on a schedule."""

from __future__ import annotations

from datetime import timedelta

from eventcore.testing import AggregateScenario
from tests.examples.registration.builders import (
    NOW,
    TERM,
    added,
    course,
    meeting,
    offered,
    opened,
    request,
    section,
    student,
    term,
)
from university.registration.domain.errors import RuleBroken
from university.registration.domain.events import (
    RequestRefused,
    SectionAdded,
    SectionDropped,
    SectionOffered,
    SectionWaitlisted,
    WaitlistSkipped,
    WaitlistWithdrawn,
)
from university.registration.domain.reasons import (
    Action,
    AlreadyRegistered,
    CreditLimitExceeded,
    NoSeatForSwap,
    NotRegistered,
    OutsideWindow,
    RefusalReason,
    TimeConflict,
)
from university.registration.domain.requests import (
    AddRequest,
    Dropped,
    Enrolled,
    Refused,
    Swapped,
)
from university.registration.domain.schedule import Schedule
from university.registration.domain.section import Section

CS101 = offered()
A, B = "2026FA-CS101-01", "2026FA-CS101-02"
CS101_02 = offered(B, meetings=(meeting("TU TH", "13:00", "14:15"),))
WINDOW = term().window_for(student())


def scenario() -> AggregateScenario[Schedule]:
    return AggregateScenario(Schedule, Schedule.stream_id(TERM, "ada"))


def dropped(offer: SectionOffered = CS101, via: Action = Action.DROP) -> SectionDropped:
    return SectionDropped(
        term_id=TERM,
        student_id="ada",
        section_id=offer.section_id,
        course_id="CS101",
        credits=4,
        via=via,
    )


def waiting(section_id: str = A) -> SectionWaitlisted:
    return SectionWaitlisted(
        term_id=TERM,
        student_id="ada",
        section_id=section_id,
        course_id="CS101",
        credits=4,
        meetings=CS101.meetings,
        position=1,
    )


def refused(
    action: Action, section_id: str, reason: RefusalReason, other: str | None = None
) -> RequestRefused:
    return RequestRefused(
        term_id=TERM,
        student_id="ada",
        action=action,
        section_id=section_id,
        reason=reason,
        other_section_id=other,
    )


# -- drop -----------------------------------------------------------------------------


def test_a_student_drops_a_section_they_hold() -> None:
    result = scenario().given(opened(), added(CS101)).when(lambda s: s.drop(A, WINDOW, NOW))
    result.then(dropped())
    assert result.result == Dropped(A)
    assert result.aggregate.credits == 0


def test_a_waiting_student_leaves_the_line_at_any_time() -> None:
    late = NOW + timedelta(days=60)
    result = scenario().given(opened(), waiting()).when(lambda s: s.drop(A, WINDOW, late))
    result.then(WaitlistWithdrawn(term_id=TERM, student_id="ada", section_id=A))
    assert result.result == Dropped(A, was_waitlisted=True)


def test_only_a_section_on_the_schedule_can_be_dropped() -> None:
    given = scenario().given(opened())
    given.when(lambda s: s.drop(A, WINDOW, NOW)).then(
        refused(Action.DROP, A, NotRegistered(section_id=A))
    )


def test_after_the_drop_deadline_the_seat_is_kept() -> None:
    late = NOW + timedelta(days=15)
    result = scenario().given(opened(), added(CS101)).when(lambda s: s.drop(A, WINDOW, late))
    [event] = result.events
    assert isinstance(event, RequestRefused)
    assert isinstance(event.reason, OutsideWindow)
    assert event.reason.closes_at == WINDOW.drop_closes_at
    assert set(result.aggregate.enrolled) == {A}


def test_between_the_add_and_drop_deadlines_a_drop_is_fine() -> None:
    between = NOW + timedelta(days=10)
    result = scenario().given(opened(), added(CS101)).when(lambda s: s.drop(A, WINDOW, between))
    result.then(dropped())


def two_other_sections() -> list[SectionOffered]:
    """Two 4-credit sections on Tuesdays and Thursdays (with CS101: 12 credits, the limit)."""
    times = [("08:00", "08:50"), ("09:00", "09:50")]
    return [
        offered(f"2026FA-X{n}01-01", f"X{n}01", meetings=(meeting("TU TH", *times[n]),))
        for n in range(2)
    ]


# -- swap -----------------------------------------------------------------------------


def swap_request() -> AddRequest:
    return request(section(section_id=B, meetings=CS101_02.meetings))


def test_a_swap_drops_one_section_and_adds_the_other_in_one_decision() -> None:
    result = scenario().given(opened(), added(CS101))
    result.when(lambda s: s.swap(A, swap_request()))
    result.then(
        dropped(via=Action.SWAP),
        SectionAdded(**{**added(CS101_02).model_dump(), "via": Action.SWAP}),
    )
    assert result.result == Swapped(dropped=A, added=B)
    assert set(result.aggregate.enrolled) == {B}


def test_a_swap_to_a_full_section_keeps_the_seat_held() -> None:
    full = section(section_id=B, capacity=1, waitlist_capacity=5, meetings=CS101_02.meetings)
    full.take_seat("bob")
    result = scenario().given(opened(), added(CS101)).when(lambda s: s.swap(A, request(full)))
    result.then(refused(Action.SWAP, B, NoSeatForSwap(section_id=B), other=A))
    assert set(result.aggregate.enrolled) == {A}


def test_a_swap_needs_the_section_it_drops() -> None:
    given = scenario().given(opened())
    given.when(lambda s: s.swap(A, swap_request())).then(
        refused(Action.SWAP, B, NotRegistered(section_id=A), other=A)
    )


def test_a_swap_to_the_same_section_is_refused() -> None:
    given = scenario().given(opened(), added(CS101))
    given.when(lambda s: s.swap(A, request())).then(
        refused(Action.SWAP, A, AlreadyRegistered(section_id=A), other=A)
    )


def test_a_swap_ignores_the_dropped_sections_time_and_credits() -> None:
    """At the credit limit, swapping a 4-credit section for another at the same time is fine."""
    others = two_other_sections()
    same_time = section(section_id=B)  # meets when A does
    result = scenario().given(opened(), added(CS101), *(added(o) for o in others))
    result.when(lambda s: s.swap(A, request(same_time)))
    assert result.result == Swapped(dropped=A, added=B)
    assert result.aggregate.credits == 12


def test_a_swap_that_would_break_the_credit_limit_keeps_the_seat_held() -> None:
    """The bug class to avoid: the drop must not go through when the add cannot."""
    others = two_other_sections()
    bigger = section(section_id="2026FA-CS102-01", course_id="CS102", credits=5)
    result = scenario().given(opened(), added(CS101), *(added(o) for o in others))
    result.when(lambda s: s.swap(A, request(bigger, of_course=course("CS102", 5)))).then(
        refused(
            Action.SWAP, "2026FA-CS102-01", CreditLimitExceeded(limit=12, requested=13), other=A
        )
    )
    assert result.aggregate.credits == 12
    assert A in result.aggregate.enrolled


def test_a_swap_checks_conflicts_with_the_other_sections() -> None:
    maths = offered("2026FA-MATH101-01", "MATH101", meetings=(meeting("TU", "13:30", "14:00"),))
    result = scenario().given(opened(), added(CS101), added(maths))
    result.when(lambda s: s.swap(A, swap_request())).then(
        refused(Action.SWAP, B, TimeConflict(with_section_id="2026FA-MATH101-01"), other=A)
    )


# -- promotion from the waitlist ----------------------------------------------------------


def seat_free_for_ada() -> Section:
    target = section(capacity=1, waitlist_capacity=2)
    target.take_seat("bob")
    target.join_waitlist("ada")
    target.release_seat("bob")
    assert target.next_in_line == "ada"
    return target


def test_a_waiting_student_who_still_qualifies_gets_the_seat() -> None:
    target = seat_free_for_ada()
    result = scenario().given(opened(), waiting()).when(lambda s: s.promote(request(target)))
    result.then(SectionAdded(**{**added(CS101).model_dump(), "via": Action.PROMOTE}))
    assert result.result == Enrolled(A)
    assert (set(result.aggregate.enrolled), result.aggregate.waitlisted) == ({A}, {})


def test_a_waiting_student_who_no_longer_qualifies_is_skipped_with_the_reason() -> None:
    target = seat_free_for_ada()
    maths = offered("2026FA-MATH101-01", "MATH101", meetings=CS101.meetings)
    result = scenario().given(opened(), waiting(), added(maths))
    result.when(lambda s: s.promote(request(target)))
    reason = TimeConflict(with_section_id="2026FA-MATH101-01")
    result.then(WaitlistSkipped(term_id=TERM, student_id="ada", section_id=A, reason=reason))
    assert result.result == Refused(A, reason)
    assert result.aggregate.waitlisted == {}


def test_a_promotion_after_the_add_deadline_skips() -> None:
    target = seat_free_for_ada()
    late = NOW + timedelta(days=9)
    result = scenario().given(opened(), waiting())
    result.when(lambda s: s.promote(request(target, at=late)))
    [event] = result.events
    assert isinstance(event, WaitlistSkipped)
    assert event.reason.code == "outside-window"


def test_only_a_waiting_student_can_be_promoted() -> None:
    target = seat_free_for_ada()
    given = scenario().given(opened())
    given.when(lambda s: s.promote(request(target))).then_raises(RuleBroken, match="not waiting")
