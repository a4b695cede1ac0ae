"""Given/when/then tests of the `Section` aggregate: its invariants, without a store."""

from __future__ import annotations

import pytest

from eventcore.testing import AggregateScenario
from university.registration.domain.errors import (
    AlreadyRegistered,
    InvalidCapacity,
    NotRegistered,
    RegistrationError,
    SectionFull,
)
from university.registration.domain.events import SectionOpened, StudentDropped, StudentRegistered
from university.registration.domain.section import Section

SECTION = "cs101"


def scenario() -> AggregateScenario[Section]:
    return AggregateScenario(Section, SECTION)


def opened(capacity: int = 2) -> SectionOpened:
    return SectionOpened(section_id=SECTION, capacity=capacity)


def registered(student_id: str) -> StudentRegistered:
    return StudentRegistered(section_id=SECTION, student_id=student_id)


def dropped(student_id: str) -> StudentDropped:
    return StudentDropped(section_id=SECTION, student_id=student_id)


def test_opening_a_section_records_its_capacity() -> None:
    result = scenario().when_created(lambda: Section.open(SECTION, 30)).then(opened(30))
    assert result.aggregate.capacity == 30
    assert result.aggregate.seats_left == 30


@pytest.mark.parametrize("capacity", [0, -1])
def test_a_section_needs_at_least_one_seat(capacity: int) -> None:
    scenario().when_created(lambda: Section.open(SECTION, capacity)).then_raises(
        InvalidCapacity, match=f"capacity {capacity}"
    )


def test_a_student_registers_for_a_free_seat() -> None:
    result = scenario().given(opened()).when(lambda s: s.register("ada")).then(registered("ada"))
    assert result.aggregate.students == {"ada"}
    assert result.aggregate.seats_left == 1


def test_a_student_cannot_register_twice() -> None:
    scenario().given(opened(), registered("ada")).when(lambda s: s.register("ada")).then_raises(
        AlreadyRegistered, match="'ada' is already registered"
    )


def test_the_capacity_is_enforced() -> None:
    result = scenario().given(opened(2), registered("ada"), registered("bob"))
    result.when(lambda s: s.register("cy")).then_raises(SectionFull, match="2 seats")
    assert result.events == []


def test_already_registered_wins_over_full() -> None:
    given = scenario().given(opened(1), registered("ada"))
    given.when(lambda s: s.register("ada")).then_raises(AlreadyRegistered)


def test_a_registered_student_drops() -> None:
    result = scenario().given(opened(), registered("ada")).when(lambda s: s.drop("ada"))
    result.then(dropped("ada"))
    assert result.aggregate.students == frozenset()


def test_only_a_registered_student_can_drop() -> None:
    scenario().given(opened()).when(lambda s: s.drop("ada")).then_raises(
        NotRegistered, match="'ada' is not registered"
    )


def test_a_dropped_student_cannot_drop_again() -> None:
    given = scenario().given(opened(), registered("ada"), dropped("ada"))
    given.when(lambda s: s.drop("ada")).then_raises(NotRegistered)


def test_a_dropped_seat_can_be_taken_again() -> None:
    given = scenario().given(opened(1), registered("ada"), dropped("ada"))
    result = given.when(lambda s: s.register("bob")).then(registered("bob"))
    assert result.aggregate.is_full
    assert result.aggregate.version == 4


def test_domain_errors_share_a_base_and_name_what_failed() -> None:
    error = SectionFull(SECTION, 30)
    assert isinstance(error, RegistrationError)
    assert (error.section_id, error.capacity) == (SECTION, 30)
    assert isinstance(InvalidCapacity(SECTION, 0), ValueError)
