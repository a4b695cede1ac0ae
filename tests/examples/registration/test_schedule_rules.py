"""Given/when/then: every rule a schedule checks before a student gets a section.

Each test gives a schedule's history, asks it to decide a request (`AddRequest`: the
section's placement and the facts from the term, the catalogue and records), and
checks what it recorded: the section added, the waitlist joined, or the refusal and
its typed reason.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

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
from university.registration.domain.events import RequestRefused, SectionWaitlisted
from university.registration.domain.reasons import (
    Action,
    AlreadyRegistered,
    AlreadyWaitlisted,
    CreditLimitExceeded,
    DuplicateCourse,
    LevelRestricted,
    OutsideWindow,
    PrerequisiteMissing,
    RefusalReason,
    RegistrationHold,
    SectionFull,
    StudentNotAdmitted,
    TimeConflict,
)
from university.registration.domain.requests import Enrolled, Refused, Waitlisted
from university.registration.domain.schedule import Schedule
from university.registration.domain.values import Hold, Level

CS101 = offered()
SECTION = CS101.section_id


def scenario() -> AggregateScenario[Schedule]:
    return AggregateScenario(Schedule, Schedule.stream_id(TERM, "ada"))


def refused(reason: RefusalReason, section_id: str = SECTION) -> RequestRefused:
    return RequestRefused(
        term_id=TERM, student_id="ada", action=Action.REGISTER, section_id=section_id, reason=reason
    )


def test_a_student_gets_a_free_seat() -> None:
    result = scenario().given(opened()).when(lambda s: s.register(request()))
    result.then(added(CS101))
    assert result.result == Enrolled(SECTION)
    assert (result.aggregate.credits, set(result.aggregate.enrolled)) == (4, {SECTION})


def test_the_first_request_of_the_term_opens_the_schedule() -> None:
    result = scenario().when_created(lambda: Schedule.open(TERM, "ada")).then(opened())
    assert (result.aggregate.term_id, result.aggregate.student_id) == (TERM, "ada")


def test_with_no_seat_for_a_newcomer_the_student_joins_the_waitlist() -> None:
    full = section(capacity=1, waitlist_capacity=2)
    full.take_seat("bob")
    result = scenario().given(opened()).when(lambda s: s.register(request(full)))
    result.then(
        SectionWaitlisted(
            term_id=TERM,
            student_id="ada",
            section_id=SECTION,
            course_id="CS101",
            credits=4,
            meetings=CS101.meetings,
            position=1,
        )
    )
    assert result.result == Waitlisted(SECTION, 1)
    assert result.aggregate.credits == 0  # waiting costs no credits


def test_a_full_section_with_a_full_waitlist_refuses() -> None:
    full = section(capacity=1, waitlist_capacity=0)
    full.take_seat("bob")
    reason = SectionFull(section_id=SECTION, capacity=1, waitlist_capacity=0)
    result = scenario().given(opened()).when(lambda s: s.register(request(full)))
    result.then(refused(reason))
    assert result.result == Refused(SECTION, reason)
    assert "full (1 seats)" in reason.message


def test_a_student_records_has_not_admitted_is_refused() -> None:
    given = scenario().given(opened())
    given.when(lambda s: s.register(request(unknown=True))).then(
        refused(StudentNotAdmitted(student_id="ada"))
    )


def test_before_the_time_ticket_opens_the_student_is_refused_with_when_it_opens() -> None:
    sophomore = student(credits=40)
    result = scenario().given(opened()).when(lambda s: s.register(request(who=sophomore)))
    [event] = result.events
    assert isinstance(event, RequestRefused)
    reason = event.reason
    assert isinstance(reason, OutsideWindow)
    assert (reason.opens_at, reason.at) == (NOW + timedelta(days=1), NOW)
    assert reason.message.startswith("the window to register opens at 2026-08-21 09:00")


def test_after_the_add_deadline_the_student_is_refused() -> None:
    late = NOW + timedelta(days=8)
    result = scenario().given(opened()).when(lambda s: s.register(request(at=late)))
    [event] = result.events
    assert isinstance(event, RequestRefused)
    assert isinstance(event.reason, OutsideWindow)
    assert event.reason.message.startswith("the window to register closed")


def test_a_graduate_uses_the_graduate_ticket() -> None:
    graduate = student(credits=10, level=Level.GRADUATE)
    window = term().window_for(graduate)
    assert (window.group, window.opens_at) == ("graduates", NOW - timedelta(days=2))


def test_an_active_registration_hold_refuses() -> None:
    hold = Hold(
        hold_id="h1",
        hold_type="bursar",
        blocks_registration=True,
        starts_on=date(2026, 8, 1),
        reason="unpaid tuition",
    )
    given = scenario().given(opened())
    given.when(lambda s: s.register(request(who=student(holds=(hold,))))).then(
        refused(RegistrationHold(hold_id="h1", hold_type="bursar", reason="unpaid tuition"))
    )


@pytest.mark.parametrize(
    "hold",
    [
        Hold(
            hold_id="t",
            hold_type="transcript",
            blocks_registration=False,
            starts_on=date(2026, 8, 1),
        ),
        Hold(hold_id="f", hold_type="bursar", blocks_registration=True, starts_on=date(2026, 9, 1)),
        Hold(
            hold_id="p",
            hold_type="bursar",
            blocks_registration=True,
            starts_on=date(2026, 1, 1),
            ends_on=date(2026, 8, 19),
        ),
    ],
    ids=["blocks-only-transcripts", "not-yet-active", "ended"],
)
def test_holds_that_do_not_block_registration_today_do_not_refuse(hold: Hold) -> None:
    given = scenario().given(opened())
    given.when(lambda s: s.register(request(who=student(holds=(hold,))))).then(added(CS101))


def test_a_student_cannot_register_twice_for_a_section() -> None:
    given = scenario().given(opened(), added(CS101))
    given.when(lambda s: s.register(request())).then(refused(AlreadyRegistered(section_id=SECTION)))


def test_a_waiting_student_cannot_ask_again() -> None:
    waiting = SectionWaitlisted(
        term_id=TERM,
        student_id="ada",
        section_id=SECTION,
        course_id="CS101",
        credits=4,
        meetings=CS101.meetings,
        position=1,
    )
    given = scenario().given(opened(), waiting)
    given.when(lambda s: s.register(request())).then(refused(AlreadyWaitlisted(section_id=SECTION)))


def test_the_same_course_twice_is_refused_naming_the_other_section() -> None:
    other = offered("2026FA-CS101-02", meetings=(meeting("TU TH", "13:00", "14:15"),))
    given = scenario().given(opened(), added(other))
    given.when(lambda s: s.register(request())).then(
        refused(DuplicateCourse(course_id="CS101", other_section_id="2026FA-CS101-02"))
    )


def test_no_waitlisting_two_sections_of_one_course() -> None:
    waiting = SectionWaitlisted(
        term_id=TERM,
        student_id="ada",
        section_id="2026FA-CS101-02",
        course_id="CS101",
        credits=4,
        meetings=(meeting("TU TH"),),
        position=3,
    )
    given = scenario().given(opened(), waiting)
    given.when(lambda s: s.register(request())).then(
        refused(DuplicateCourse(course_id="CS101", other_section_id="2026FA-CS101-02"))
    )


def test_a_course_restricted_to_graduates_refuses_undergraduates() -> None:
    seminar = course("CS501", restricted_to=Level.GRADUATE)
    target = section(course_id="CS501", section_id="2026FA-CS501-01")
    given = scenario().given(opened())
    given.when(lambda s: s.register(request(target, of_course=seminar))).then(
        refused(
            LevelRestricted(required=Level.GRADUATE, level=Level.UNDERGRADUATE),
            "2026FA-CS501-01",
        )
    )


def test_a_missing_prerequisite_refuses_with_the_groups_still_missing() -> None:
    advanced = course("CS301", prerequisites=[["CS201", "CS202"], ["MATH101"]])
    target = section(course_id="CS301", section_id="2026FA-CS301-01")
    who = student(completed=("CS202",))
    result = scenario().given(opened())
    result.when(lambda s: s.register(request(target, who=who, of_course=advanced))).then(
        refused(PrerequisiteMissing(course_id="CS301", missing=(("MATH101",),)), "2026FA-CS301-01")
    )
    reason = PrerequisiteMissing(course_id="CS301", missing=(("A", "B"), ("C",)))
    assert reason.message == "CS301 requires A or B and C"


def test_completed_prerequisites_let_the_student_in() -> None:
    advanced = course("CS301", prerequisites=[["CS201", "CS202"]])
    target = section(course_id="CS301", section_id="2026FA-CS301-01")
    who = student(completed=("CS201",))
    result = scenario().given(opened())
    result.when(lambda s: s.register(request(target, who=who, of_course=advanced)))
    assert result.result == Enrolled("2026FA-CS301-01")


def test_a_time_conflict_names_the_section_it_conflicts_with() -> None:
    maths = offered("2026FA-MATH101-01", "MATH101", meetings=(meeting("MO", "09:30", "10:20"),))
    given = scenario().given(opened(), added(maths))
    given.when(lambda s: s.register(request())).then(
        refused(TimeConflict(with_section_id="2026FA-MATH101-01"))
    )


def test_back_to_back_meetings_do_not_conflict() -> None:
    maths = offered(
        "2026FA-MATH101-01", "MATH101", meetings=(meeting("MO WE FR", "09:50", "10:40"),)
    )
    result = scenario().given(opened(), added(maths)).when(lambda s: s.register(request()))
    assert result.result == Enrolled(SECTION)


def test_the_credit_limit_is_never_exceeded() -> None:
    heavy = [
        offered(
            f"2026FA-X{n}01-01",
            f"X{n}01",
            credits=4,
            meetings=(meeting("TU TH", f"{8 + 2 * n:02d}:00", f"{9 + 2 * n:02d}:00"),),
        )
        for n in range(2)
    ]
    result = scenario().given(opened(), *(added(o) for o in heavy))
    result.when(lambda s: s.register(request())).then(added(CS101))  # 12 = the limit
    five = section(credits=5, course_id="CS102", section_id="2026FA-CS102-01")
    over = scenario().given(opened(), *(added(o) for o in heavy))
    over.when(lambda s: s.register(request(five, of_course=course("CS102", 5)))).then(
        refused(CreditLimitExceeded(limit=12, requested=13), "2026FA-CS102-01")
    )


def test_rules_are_checked_in_a_fixed_order() -> None:
    """A held sophomore asking for a full section is told about the window first."""
    hold = Hold(
        hold_id="h", hold_type="bursar", blocks_registration=True, starts_on=date(2026, 1, 1)
    )
    full = section(capacity=1, waitlist_capacity=0)
    full.take_seat("bob")
    who = student(credits=40, holds=(hold,))
    result = scenario().given(opened()).when(lambda s: s.register(request(full, who=who)))
    [event] = result.events
    assert isinstance(event, RequestRefused)
    assert event.reason.code == "outside-window"
