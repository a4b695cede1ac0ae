"""What registration promises other contexts: its published integration events.

This module is registration's public contract, and the only part of registration that
another context may import. Its events are versioned and stable; the domain events
behind them (`registration.domain.events`) are private and free to change. Both go to
topic `registration.enrolments`, keyed by section id, so one section's changes reach a
consumer in the order they happened.
"""

from __future__ import annotations

from datetime import datetime

from eventcore import IntegrationEvent

__all__ = ["TOPIC", "StudentEnrolled", "StudentWithdrew"]

TOPIC = "registration.enrolments"
"""The topic both contracts are published to (a RabbitMQ routing key, a NATS subject)."""


class StudentEnrolled(IntegrationEvent, type_name="registration.StudentEnrolled", topic=TOPIC):
    """A student took a seat in a section."""

    student_id: str
    section_id: str
    sequence: int
    """The section's version after this change: it grows with every change to the section,
    so a consumer can tell a late (reordered) message from a newer one."""
    occurred_at: datetime


class StudentWithdrew(IntegrationEvent, type_name="registration.StudentWithdrew", topic=TOPIC):
    """A student gave up their seat in a section."""

    student_id: str
    section_id: str
    sequence: int
    """The section's version after this change (see `StudentEnrolled.sequence`)."""
    occurred_at: datetime
