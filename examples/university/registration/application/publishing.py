"""Which of registration's domain events become its public contracts, and how.

The mapping is the anti-corruption layer on the way out: the `Section` aggregate may
rename or reshape its private events, and only this module has to follow.
`SectionOpened` is not published: no other context needs it yet.
"""

from __future__ import annotations

from eventcore import IntegrationMapping, RecordedEvent, translates
from university.registration.contracts import StudentEnrolled, StudentWithdrew
from university.registration.domain.events import StudentDropped, StudentRegistered

__all__ = ["RegistrationContract"]


class RegistrationContract(IntegrationMapping):
    """Registration's domain events as its integration events (wired by `bootstrap()`).

    Each message is keyed by the section's id (the stream id), so one section's
    messages are published in order.
    """

    @translates
    def _registered(self, event: StudentRegistered, recorded: RecordedEvent) -> StudentEnrolled:
        return StudentEnrolled(
            student_id=event.student_id,
            section_id=event.section_id,
            sequence=recorded.version,
            occurred_at=recorded.recorded_at,
        )

    @translates
    def _dropped(self, event: StudentDropped, recorded: RecordedEvent) -> StudentWithdrew:
        return StudentWithdrew(
            student_id=event.student_id,
            section_id=event.section_id,
            sequence=recorded.version,
            occurred_at=recorded.recorded_at,
        )
