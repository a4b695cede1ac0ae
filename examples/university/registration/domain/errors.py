"""Why the registration domain refuses a command. Every error is a `RegistrationError`."""

from __future__ import annotations

__all__ = [
    "AlreadyRegistered",
    "InvalidCapacity",
    "NotRegistered",
    "RegistrationError",
    "SectionAlreadyOpen",
    "SectionFull",
    "SectionNotFound",
]


class RegistrationError(Exception):
    """A command broke a rule of the registration domain; nothing was recorded."""

    def __init__(self, section_id: str, message: str) -> None:
        self.section_id = section_id
        super().__init__(message)


class InvalidCapacity(RegistrationError, ValueError):
    """A section must have at least one seat."""

    def __init__(self, section_id: str, capacity: int) -> None:
        self.capacity = capacity
        super().__init__(section_id, f"section {section_id!r}: capacity {capacity} is not >= 1")


class SectionAlreadyOpen(RegistrationError):
    """A section with this id was opened before."""

    def __init__(self, section_id: str) -> None:
        super().__init__(section_id, f"section {section_id!r} is already open")


class SectionNotFound(RegistrationError, LookupError):
    """No section with this id was ever opened."""

    def __init__(self, section_id: str) -> None:
        super().__init__(section_id, f"section {section_id!r} does not exist")


class SectionFull(RegistrationError):
    """Every seat of the section is taken."""

    def __init__(self, section_id: str, capacity: int) -> None:
        self.capacity = capacity
        super().__init__(section_id, f"section {section_id!r} is full ({capacity} seats)")


class AlreadyRegistered(RegistrationError):
    """The student holds a seat in the section already."""

    def __init__(self, section_id: str, student_id: str) -> None:
        self.student_id = student_id
        super().__init__(section_id, f"{student_id!r} is already registered in {section_id!r}")


class NotRegistered(RegistrationError):
    """The student holds no seat in the section, so cannot drop it."""

    def __init__(self, section_id: str, student_id: str) -> None:
        self.student_id = student_id
        super().__init__(section_id, f"{student_id!r} is not registered in {section_id!r}")
