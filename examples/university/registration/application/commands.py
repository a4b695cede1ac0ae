"""What callers ask the registration context to do, in the imperative.

A command is a plain immutable message. Its `command_id` becomes the causation id of
every event it records, and the correlation id too unless `correlation_id` is given (to
tie it to the conversation it is part of). `actor` says who asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from eventcore import new_event_id

__all__ = ["Command", "DropStudent", "OpenSection", "RegisterStudent"]


def _new_command_id() -> str:
    return str(new_event_id())


@dataclass(frozen=True, kw_only=True)
class Command:
    """What every command carries besides its own fields."""

    command_id: str = field(default_factory=_new_command_id)
    correlation_id: str | None = None
    actor: str = "registrar"


@dataclass(frozen=True)
class OpenSection(Command):
    """Open section `section_id` with `capacity` seats."""

    section_id: str
    capacity: int


@dataclass(frozen=True)
class RegisterStudent(Command):
    """Give `student_id` a seat in section `section_id`."""

    section_id: str
    student_id: str


@dataclass(frozen=True)
class DropStudent(Command):
    """Free the seat `student_id` holds in section `section_id`."""

    section_id: str
    student_id: str
