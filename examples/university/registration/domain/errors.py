"""Errors of the registration domain. Every one is a `RegistrationError`.

These are not refusals. A student's request that breaks a rule is answered with a
typed reason (`reasons.py`) and recorded; an error means the request itself could not
be taken: bad input from the registrar, something that does not exist, or a command
that would break an aggregate's invariant (which the decision rules never let through).
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "InvalidCourse",
    "InvalidSection",
    "InvalidTerm",
    "NotFound",
    "RegistrationError",
    "RuleBroken",
]


class RegistrationError(Exception):
    """A command could not be taken; nothing was recorded."""


class InvalidTerm(RegistrationError, ValueError):
    """A term's dates, time tickets or limits do not make sense."""

    def __init__(self, term_id: str, problem: str) -> None:
        self.term_id = term_id
        super().__init__(f"term {term_id!r}: {problem}")


class InvalidCourse(RegistrationError, ValueError):
    """A course's credits or prerequisites do not make sense."""

    def __init__(self, course_id: str, problem: str) -> None:
        self.course_id = course_id
        super().__init__(f"course {course_id!r}: {problem}")


class InvalidSection(RegistrationError, ValueError):
    """A section's seats or meetings do not make sense."""

    def __init__(self, section_id: str, problem: str) -> None:
        self.section_id = section_id
        super().__init__(f"section {section_id!r}: {problem}")


class NotFound(RegistrationError, LookupError):
    """No term, course or section with this id exists."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!r} does not exist")


class AlreadyExists(RegistrationError):
    """A term, course or section with this id exists already."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!r} exists already")


class RuleBroken(RegistrationError):
    """A command would break an aggregate's invariant (a seat given twice, say)."""

    def __init__(self, stream_id: str, problem: str) -> None:
        self.stream_id = stream_id
        super().__init__(f"{stream_id}: {problem}")
