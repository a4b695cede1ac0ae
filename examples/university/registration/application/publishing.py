"""Which of registration's domain events become its public contracts, and how.

The mapping is the anti-corruption layer on the way out: the aggregates may rename or
reshape their private events, and only this module has to follow. The catalogue's
events, refusals and the schedule's own bookkeeping stay private.
"""

from __future__ import annotations

from eventcore import IntegrationEvent, IntegrationMapping, RecordedEvent, translates
from university.registration.contracts import (
    StudentEnrolled,
    StudentWaitlisted,
    StudentWithdrew,
    WaitlistPromotionSkipped,
)
from university.registration.domain.events import (
    SeatReleased,
    SeatTaken,
    WaitlistSkipped,
)
from university.registration.domain.events import (
    StudentWaitlisted as Waitlisted,
)
from university.registration.domain.reasons import Action

__all__ = ["RegistrationContract"]


class RegistrationContract(IntegrationMapping):
    """Registration's domain events as its integration events (wired by `bootstrap()`).

    Each message is keyed by its source stream (a section, or a student's schedule),
    so one section's messages are published in order.
    """

    @translates
    def _seat_taken(self, event: SeatTaken, recorded: RecordedEvent) -> StudentEnrolled:
        return StudentEnrolled(
            student_id=event.student_id,
            section_id=event.section_id,
            sequence=recorded.version,
            occurred_at=recorded.recorded_at,
            from_waitlist=event.from_waitlist,
        )

    @translates
    def _seat_released(self, event: SeatReleased, recorded: RecordedEvent) -> StudentWithdrew:
        return StudentWithdrew(
            student_id=event.student_id,
            section_id=event.section_id,
            sequence=recorded.version,
            occurred_at=recorded.recorded_at,
            swapped=event.via is Action.SWAP,
        )

    @translates
    def _waitlisted(self, event: Waitlisted, recorded: RecordedEvent) -> StudentWaitlisted:
        return StudentWaitlisted(
            student_id=event.student_id,
            section_id=event.section_id,
            sequence=recorded.version,
            occurred_at=recorded.recorded_at,
        )

    @translates
    def _skipped(self, event: WaitlistSkipped, recorded: RecordedEvent) -> WaitlistPromotionSkipped:
        return WaitlistPromotionSkipped(
            student_id=event.student_id,
            section_id=event.section_id,
            term_id=event.term_id,
            reason_code=event.reason.code,
            reason=event.reason.message,
            occurred_at=recorded.recorded_at,
        )

    def partition_key(self, recorded: RecordedEvent, event: IntegrationEvent) -> str:
        """The section's id for seats, the student's for what they are told."""
        if isinstance(event, WaitlistPromotionSkipped):
            return event.student_id
        return getattr(recorded.event, "section_id", recorded.stream_id)
