"""A small bounded context for the outbox tests: sections publish enrolments."""

from __future__ import annotations

from eventcore import (
    Aggregate,
    Consumer,
    ConsumerContext,
    DomainEvent,
    IntegrationEvent,
    IntegrationMapping,
    RecordedEvent,
    apply,
    handles,
    translates,
)


class SeatTaken(DomainEvent, type_name="tests.messaging.SeatTaken"):
    """Private domain event."""

    student_id: str
    internal_note: str = ""


class SectionOpened(DomainEvent, type_name="tests.messaging.SectionOpened"):
    """Private domain event that is not published."""

    capacity: int


class StudentEnrolled(
    IntegrationEvent, type_name="tests.StudentEnrolled", topic="tests.enrolments"
):
    """The public contract."""

    student_id: str
    section_id: str
    seat: int


class Section(Aggregate, aggregate_type="tests.messaging.Section"):
    """A section with seats."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.taken = 0

    def take_seat(self, student_id: str) -> None:
        """Give `student_id` the next seat."""
        self.record(SeatTaken(student_id=student_id, internal_note="private"))

    @apply
    def _taken(self, event: SeatTaken) -> None:
        self.taken += 1


class SectionContract(IntegrationMapping):
    """What the section context publishes."""

    @translates
    def _taken(self, event: SeatTaken, recorded: RecordedEvent) -> StudentEnrolled:
        return StudentEnrolled(
            student_id=event.student_id, section_id=recorded.stream_id, seat=recorded.version
        )


class EnrolmentLog(Consumer, name="tests.enrolment_log", max_attempts=3):
    """A consumer that remembers what it saw (and can be told to fail)."""

    def __init__(self) -> None:
        self.seen: list[StudentEnrolled] = []
        self.fail_for: set[str] = set()

    @handles
    async def _enrolled(self, event: StudentEnrolled, context: ConsumerContext) -> None:
        if event.student_id in self.fail_for:
            raise RuntimeError(f"cannot handle {event.student_id}")
        self.seen.append(event)
