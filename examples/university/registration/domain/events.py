"""What happened to a section, in the past tense. Stored forever: change with care.

Each event's `type_name` is what the store keeps; it is prefixed with the context's name
so that other contexts (student records, analytics) can tell whose events they read.
"""

from __future__ import annotations

from eventcore import DomainEvent

__all__ = ["SectionOpened", "StudentDropped", "StudentRegistered"]


class SectionOpened(DomainEvent, type_name="registration.SectionOpened"):
    """A section was opened for registration with a fixed number of seats."""

    section_id: str
    capacity: int


class StudentRegistered(DomainEvent, type_name="registration.StudentRegistered"):
    """A student took a seat in a section."""

    section_id: str
    student_id: str


class StudentDropped(DomainEvent, type_name="registration.StudentDropped"):
    """A student gave up their seat in a section."""

    section_id: str
    student_id: str
