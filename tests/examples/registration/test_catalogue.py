"""Given/when/then tests of terms and courses, and of the values rules are made of."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from pydantic import ValidationError

from eventcore.testing import AggregateScenario
from tests.examples.registration.builders import NOW, TERM, course, meeting, student, term
from university.registration.domain.course import Course
from university.registration.domain.errors import InvalidCourse, InvalidTerm
from university.registration.domain.events import CourseCatalogued
from university.registration.domain.reasons import Action, OutsideWindow
from university.registration.domain.term import Term
from university.registration.domain.values import (
    CreditLimits,
    Hold,
    Level,
    TimeTicket,
    missing_prerequisites,
)

DAY = timedelta(days=1)


def test_a_term_keeps_its_tickets_in_opening_order() -> None:
    scheduled = term()
    assert [t.group for t in scheduled.time_tickets] == ["graduates", "seniors", "everyone"]
    assert scheduled.id == Term.stream_id(TERM)
    created = AggregateScenario(Term, Term.stream_id(TERM)).when_created(term)
    created.then(*created.events)  # and its state replays from its one event


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"ends_on": date(2026, 8, 1)}, "not after it starts"),
        (
            {"time_tickets": [TimeTicket(group="seniors", opens_at=NOW, min_earned_credits=90)]},
            "must admit every student",
        ),
        (
            {
                "time_tickets": [
                    TimeTicket(group="x", opens_at=NOW),
                    TimeTicket(group="x", opens_at=NOW),
                ]
            },
            "distinct names",
        ),
        ({"add_deadline": NOW - 5 * DAY}, "after the first ticket opens"),
        ({"drop_deadline": NOW}, "cannot come before the add deadline"),
    ],
)
def test_a_term_that_makes_no_sense_is_refused(changes: dict[str, object], problem: str) -> None:
    with pytest.raises(InvalidTerm, match=problem):
        term(**changes)


def test_a_student_gets_the_earliest_ticket_they_qualify_for() -> None:
    scheduled = term()
    assert scheduled.window_for(student(credits=95)).group == "seniors"
    assert scheduled.window_for(student(credits=10)).group == "everyone"
    graduate = student(credits=150, level=Level.GRADUATE)
    assert scheduled.window_for(graduate).group == "graduates"
    assert scheduled.credit_limit_for(graduate) == 9
    assert scheduled.credit_limit_for(student()) == 12


def test_the_window_is_open_from_the_ticket_to_each_deadline() -> None:
    window = term().window_for(student())
    assert window.refusal(Action.REGISTER, NOW) is None
    assert window.refusal(Action.REGISTER, NOW + 7 * DAY) is None
    late = window.refusal(Action.REGISTER, NOW + 8 * DAY)
    assert isinstance(late, OutsideWindow)
    assert late.closes_at == NOW + 7 * DAY
    assert window.refusal(Action.DROP, NOW + 10 * DAY) is None
    assert window.refusal(Action.SWAP, NOW + 10 * DAY) is not None  # a swap also adds
    early = window.refusal(Action.DROP, NOW - 2 * DAY)
    assert isinstance(early, OutsideWindow)
    assert early.opens_at == NOW - DAY


def test_a_course_joins_the_catalogue_with_its_prerequisites() -> None:
    AggregateScenario(Course, Course.stream_id("CS301")).when_created(
        lambda: course("CS301", prerequisites=[["CS201", "CS202"], ["MATH101"]])
    ).then(
        CourseCatalogued(
            course_id="CS301",
            title="Course CS301",
            department="CS",
            credits=4,
            level=Level.UNDERGRADUATE,
            prerequisites=(("CS201", "CS202"), ("MATH101",)),
        )
    )


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"credits": 0}, "credits must be 1 to 12"),
        ({"credits": 13}, "credits must be 1 to 12"),
        ({"prerequisites": [[]]}, "at least one course"),
        ({"prerequisites": [["CS101"]]}, "its own prerequisite"),
    ],
)
def test_a_course_that_makes_no_sense_is_refused(changes: dict[str, object], problem: str) -> None:
    options: dict[str, object] = {"credits": 4, **changes}
    with pytest.raises(InvalidCourse, match=problem):
        course("CS101", **options)  # type: ignore[arg-type]


def test_prerequisites_are_groups_of_alternatives() -> None:
    required = (("CS201", "CS202"), ("MATH101",))
    assert missing_prerequisites(required, ["CS202", "MATH101"]) == ()
    assert missing_prerequisites(required, ["CS201"]) == (("MATH101",),)
    assert missing_prerequisites(required, []) == required


def test_meetings_overlap_only_on_a_shared_day_and_time() -> None:
    monday = meeting("MO WE", "09:00", "09:50")
    assert monday.overlaps(meeting("WE", "09:30", "10:00"))
    assert not monday.overlaps(meeting("TU TH", "09:00", "09:50"))
    assert not monday.overlaps(meeting("MO", "09:50", "10:40"))
    assert str(monday) == "MoWe 09:00-09:50"
    with pytest.raises(ValidationError, match="end after it starts"):
        meeting("MO", "10:00", "09:00")
    with pytest.raises(ValidationError, match="distinct days"):
        meeting("MO MO")


def test_a_hold_is_active_between_its_dates() -> None:
    hold = Hold(
        hold_id="h",
        hold_type="bursar",
        blocks_registration=True,
        starts_on=date(2026, 8, 1),
        ends_on=date(2026, 8, 31),
    )
    assert not hold.blocks_registration_on(date(2026, 7, 31))
    assert hold.blocks_registration_on(date(2026, 8, 31))
    assert not hold.blocks_registration_on(date(2026, 9, 1))


def test_credit_limits_are_per_level() -> None:
    limits = CreditLimits(undergraduate=19, graduate=10)
    assert (limits.for_level(Level.UNDERGRADUATE), limits.for_level(Level.GRADUATE)) == (19, 10)
    with pytest.raises(ValidationError):
        CreditLimits(undergraduate=0)
