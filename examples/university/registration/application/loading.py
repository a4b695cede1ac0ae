"""What every handler needs: its services, its message context, and aggregates loaded in a
unit of work."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from eventcore import AggregateNotFoundError, Repository, UnitOfWork, message_context
from university.registration.application.commands import Command
from university.registration.application.concurrency import Retries, StreamGate
from university.registration.application.ports import Clock, StudentDirectory
from university.registration.domain.course import Course
from university.registration.domain.errors import NotFound
from university.registration.domain.schedule import Schedule
from university.registration.domain.section import Section
from university.registration.domain.term import Term

__all__ = [
    "Services",
    "UnitOfWorkFactory",
    "find_section",
    "handling",
    "load_course",
    "load_or_open_schedule",
    "load_term",
]

UnitOfWorkFactory = Callable[[], UnitOfWork]
"""Makes a new, not yet entered, unit of work (one per attempt)."""


@dataclass
class Services:
    """What the handlers run on (made by `bootstrap()`)."""

    new_unit_of_work: UnitOfWorkFactory
    directory: StudentDirectory
    clock: Clock
    gate: StreamGate = field(default_factory=StreamGate)
    retries: Retries = field(default_factory=Retries)


@contextmanager
def handling(command: Command) -> Iterator[None]:
    """The command's message context: its events carry its id, correlation and actor."""
    with message_context(
        command.command_id, correlation_id=command.correlation_id, actor=command.actor
    ):
        yield


async def load_term(uow: UnitOfWork, term_id: str) -> Term:
    """The term (`NotFound` if it was never scheduled)."""
    try:
        return await uow.repository(Term).get(Term.stream_id(term_id))
    except AggregateNotFoundError as error:
        raise NotFound("term", term_id) from error


async def load_course(uow: UnitOfWork, course_id: str) -> Course:
    """The course (`NotFound` if it is not in the catalogue)."""
    try:
        return await uow.repository(Course).get(Course.stream_id(course_id))
    except AggregateNotFoundError as error:
        raise NotFound("course", course_id) from error


async def find_section(
    uow: UnitOfWork, section_id: str, term_id: str | None = None
) -> Section | None:
    """The section (`None` if it is not offered, or not in `term_id` when given)."""
    try:
        section = await uow.repository(Section).get(Section.stream_id(section_id))
    except AggregateNotFoundError:
        return None
    return section if term_id is None or section.term_id == term_id else None


async def load_or_open_schedule(
    repository: Repository[Schedule], term_id: str, student_id: str
) -> Schedule:
    """The student's schedule for the term, opened (and tracked) if this is their first request."""
    try:
        return await repository.get(Schedule.stream_id(term_id, student_id))
    except AggregateNotFoundError:
        schedule = Schedule.open(term_id, student_id)
        await repository.add(schedule)
        return schedule
