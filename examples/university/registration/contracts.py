"""What registration promises other contexts: its published integration events.

This module is registration's public contract, and the only part of registration that
another context may import. Its events are versioned and stable; the domain events
behind them are private and free to change (only `application.publishing` follows).
Consumers read tolerantly: a field added with a default is not a new version.

- Topic `registration.enrolments`, keyed by section id, so one section's changes reach
  a consumer in order: `StudentEnrolled`, `StudentWithdrew`, `StudentWaitlisted`. Their
  `sequence` is the section's version after the change, so a consumer can tell a late
  (reordered) message from a newer one.
- Topic `registration.waitlists`, keyed by student: `WaitlistPromotionSkipped`, the
  student to be told why a freed seat did not go to them.
"""

from __future__ import annotations

from datetime import datetime

from eventcore import IntegrationEvent

__all__ = [
    "ENROLMENTS",
    "TOPIC",
    "TOPICS",
    "WAITLISTS",
    "StudentEnrolled",
    "StudentWaitlisted",
    "StudentWithdrew",
    "WaitlistPromotionSkipped",
]

ENROLMENTS = "registration.enrolments"
"""The topic of seats taken, given up and waited for (a RabbitMQ routing key, a NATS subject)."""
TOPIC = ENROLMENTS
"""The first topic registration published to (kept for its consumers)."""
WAITLISTS = "registration.waitlists"
"""The topic of what the waitlist process tells students."""
TOPICS = (ENROLMENTS, WAITLISTS)
"""Every topic registration publishes to."""


class StudentEnrolled(IntegrationEvent, type_name="registration.StudentEnrolled", topic=ENROLMENTS):
    """A student took a seat in a section (by registering, swapping, or from the waitlist)."""

    student_id: str
    section_id: str
    sequence: int
    """The section's version after this change."""
    occurred_at: datetime
    from_waitlist: bool = False


class StudentWithdrew(IntegrationEvent, type_name="registration.StudentWithdrew", topic=ENROLMENTS):
    """A student gave up their seat in a section (a drop, or the first half of a swap)."""

    student_id: str
    section_id: str
    sequence: int
    """The section's version after this change."""
    occurred_at: datetime
    swapped: bool = False


class StudentWaitlisted(
    IntegrationEvent, type_name="registration.StudentWaitlisted", topic=ENROLMENTS
):
    """A student joined the end of a section's waitlist."""

    student_id: str
    section_id: str
    sequence: int
    """The section's version after this change."""
    occurred_at: datetime


class WaitlistPromotionSkipped(
    IntegrationEvent, type_name="registration.WaitlistPromotionSkipped", topic=WAITLISTS
):
    """A seat came free, but the waiting student no longer qualified: they left the line.

    `reason_code` is stable (`hold`, `time-conflict`, `credit-limit`, ...); `reason` says
    it in words.
    """

    student_id: str
    section_id: str
    term_id: str
    reason_code: str
    reason: str
    occurred_at: datetime
