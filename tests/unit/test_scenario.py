"""`AggregateScenario`: given/when/then for aggregates, and the failures it reports."""

from __future__ import annotations

import itertools
import re

import pytest

from eventcore import Aggregate, DomainEvent, apply
from eventcore.testing import AggregateScenario


class SectionOpened(DomainEvent, type_name="test_scenario.SectionOpened"):
    capacity: int


class StudentRegistered(DomainEvent, type_name="test_scenario.StudentRegistered"):
    student_id: str


class SectionFull(Exception):
    """No seat is left."""


class Section(Aggregate):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.capacity = 0
        self.students: list[str] = []

    @classmethod
    def open(cls, id: str, capacity: int) -> Section:
        section = cls(id)
        section.record(SectionOpened(capacity=capacity))
        return section

    def register(self, student_id: str) -> int:
        if student_id in self.students:
            return len(self.students)
        if len(self.students) >= self.capacity:
            raise SectionFull(f"section {self.id} is full")
        self.record(StudentRegistered(student_id=student_id))
        return len(self.students)

    def sneak_in(self, student_id: str) -> None:
        """A bug: changes state without recording an event."""
        self.students.append(student_id)

    async def register_later(self, student_id: str) -> None:
        self.register(student_id)

    @apply
    def _opened(self, event: SectionOpened) -> None:
        self.capacity = event.capacity

    @apply
    def _registered(self, event: StudentRegistered) -> None:
        self.students.append(event.student_id)


class Ticked(DomainEvent, type_name="test_scenario.Ticked"):
    pass


_ticks = itertools.count()


class Clock(Aggregate):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.last_tick = -1

    def tick(self) -> None:
        self.record(Ticked())

    @apply
    def _ticked(self, event: Ticked) -> None:
        self.last_tick = next(_ticks)  # not pure: depends on a global counter


def opened_section(capacity: int = 2) -> AggregateScenario[Section]:
    return AggregateScenario(Section).given(SectionOpened(capacity=capacity))


# -- then ----------------------------------------------------------------------------


def test_then_passes_on_the_recorded_events() -> None:
    scenario = (
        opened_section().when(lambda s: s.register("a")).then(StudentRegistered(student_id="a"))
    )
    assert scenario.aggregate.students == ["a"]
    assert scenario.aggregate.version == 2
    assert scenario.aggregate.id == "test-aggregate"
    assert scenario.result == 1
    assert scenario.events == [StudentRegistered(student_id="a")]


def test_given_accumulates_history() -> None:
    scenario = opened_section(capacity=3).given(StudentRegistered(student_id="a"))
    scenario.given(StudentRegistered(student_id="b"))
    scenario.when(lambda s: s.register("c")).then(StudentRegistered(student_id="c"))
    assert scenario.aggregate.students == ["a", "b", "c"]


def test_the_aggregate_id_can_be_chosen() -> None:
    scenario = AggregateScenario(Section, "cs101").given(SectionOpened(capacity=1))
    assert scenario.when(lambda s: None).then_nothing().aggregate.id == "cs101"


def test_then_fails_on_other_events() -> None:
    scenario = opened_section().when(lambda s: s.register("a"))
    with pytest.raises(AssertionError) as caught:
        scenario.then(StudentRegistered(student_id="b"))
    message = str(caught.value)
    assert "expected events:\n  1. StudentRegistered(student_id='b')" in message
    assert "actual events:\n  1. StudentRegistered(student_id='a')" in message


def test_then_fails_on_missing_or_extra_events() -> None:
    scenario = opened_section().when(lambda s: s.register("a"))
    with pytest.raises(AssertionError, match="expected events"):
        scenario.then()
    with pytest.raises(AssertionError, match=r"2\. StudentRegistered"):
        scenario.then(StudentRegistered(student_id="a"), StudentRegistered(student_id="a"))


def test_then_fails_when_the_command_raised() -> None:
    scenario = opened_section(capacity=0).when(lambda s: s.register("a"))
    with pytest.raises(AssertionError, match="raised SectionFull: section test-aggregate is full"):
        scenario.then(StudentRegistered(student_id="a"))


# -- then_nothing --------------------------------------------------------------------


def test_then_nothing_passes_when_no_event_is_recorded() -> None:
    scenario = opened_section().given(StudentRegistered(student_id="a"))
    assert scenario.when(lambda s: s.register("a")).then_nothing().result == 1


def test_then_nothing_fails_when_events_are_recorded() -> None:
    scenario = opened_section().when(lambda s: s.register("a"))
    with pytest.raises(AssertionError, match=r"actual events:\n  1\. StudentRegistered"):
        scenario.then_nothing()


# -- then_raises ---------------------------------------------------------------------


def test_then_raises_passes_on_the_error() -> None:
    scenario = opened_section(capacity=0).when(lambda s: s.register("a"))
    scenario.then_raises(SectionFull)
    scenario.then_raises(Exception, match="is full")
    assert scenario.events == []


def test_then_raises_fails_when_nothing_is_raised() -> None:
    scenario = opened_section().when(lambda s: s.register("a"))
    with pytest.raises(AssertionError, match="expected SectionFull to be raised, but the command"):
        scenario.then_raises(SectionFull)


def test_then_raises_fails_on_another_error() -> None:
    scenario = opened_section(capacity=0).when(lambda s: s.register("a"))
    with pytest.raises(AssertionError, match="expected KeyError to be raised, got SectionFull"):
        scenario.then_raises(KeyError)


def test_then_raises_fails_on_another_message() -> None:
    scenario = opened_section(capacity=0).when(lambda s: s.register("a"))
    with pytest.raises(AssertionError, match=re.escape("does not contain 'closed'")):
        scenario.then_raises(SectionFull, match="closed")


# -- creation commands ---------------------------------------------------------------


def test_when_created_checks_the_creation_events() -> None:
    scenario = AggregateScenario(Section).when_created(lambda: Section.open("cs101", 30))
    scenario.then(SectionOpened(capacity=30))
    assert (scenario.aggregate.id, scenario.aggregate.capacity) == ("cs101", 30)


def test_when_created_fails_on_other_events() -> None:
    scenario = AggregateScenario(Section).when_created(lambda: Section.open("cs101", 30))
    with pytest.raises(AssertionError, match="capacity=31"):
        scenario.then(SectionOpened(capacity=31))


def test_when_created_can_raise() -> None:
    def fail() -> Section:
        raise SectionFull("no room at all")

    scenario = AggregateScenario(Section).when_created(fail).then_raises(SectionFull)
    with pytest.raises(RuntimeError, match="no aggregate"):
        _ = scenario.aggregate


def test_when_created_refuses_given_events() -> None:
    with pytest.raises(RuntimeError, match="cannot have given events"):
        opened_section().when_created(lambda: Section.open("cs101", 30))


# -- the replay check ----------------------------------------------------------------


def test_an_impure_apply_handler_fails_the_replay_check() -> None:
    scenario = AggregateScenario(Clock).given(Ticked()).when(lambda c: c.tick())
    with pytest.raises(AssertionError) as caught:
        scenario.then(Ticked())
    message = str(caught.value)
    assert "a handler is not pure" in message
    assert "last_tick: after the command" in message


def test_state_changed_outside_apply_fails_the_replay_check() -> None:
    scenario = opened_section().when(lambda s: s.sneak_in("a"))
    with pytest.raises(
        AssertionError, match=re.escape("students: after the command ['a'], rebuilt []")
    ):
        scenario.then_nothing()


# -- misuse --------------------------------------------------------------------------


def test_then_before_when_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="call when"):
        opened_section().then_nothing()


def test_when_runs_once() -> None:
    scenario = opened_section().when(lambda s: s.register("a"))
    with pytest.raises(RuntimeError, match="only once"):
        scenario.when(lambda s: s.register("b"))
    with pytest.raises(RuntimeError, match="before when"):
        scenario.given(StudentRegistered(student_id="b"))


def test_async_commands_are_refused() -> None:
    with pytest.raises(TypeError, match="sync commands only"):
        opened_section().when(lambda s: s.register_later("a"))
