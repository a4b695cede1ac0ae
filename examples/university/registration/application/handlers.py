"""One small async handler per command.

Each handler runs inside `message_context(command id, ...)`, so the events it records
carry the command's correlation and causation ids and its actor. Each opens a fresh
`UnitOfWork` per attempt: when another writer saved the section first, the attempt fails
with a `ConcurrencyError` and `retry_on_conflict` runs it again on the new state, where
the domain decides anew (a section that filled up meanwhile raises `SectionFull`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from eventcore import (
    AggregateNotFoundError,
    Repository,
    UnitOfWork,
    WrongExpectedVersionError,
    message_context,
    retry_on_conflict,
)
from university.registration.application.commands import (
    Command,
    DropStudent,
    OpenSection,
    RegisterStudent,
)
from university.registration.domain.errors import SectionAlreadyOpen, SectionNotFound
from university.registration.domain.section import Section

__all__ = [
    "DEFAULT_ATTEMPTS",
    "UnitOfWorkFactory",
    "drop_student",
    "open_section",
    "register_student",
]

UnitOfWorkFactory = Callable[[], UnitOfWork]
"""Makes a new, not yet entered, unit of work (one per attempt)."""

DEFAULT_ATTEMPTS = 50
"""Tries per command. A popular section at peak load sees dozens of writers at once;
each conflict costs one reload, and the backoff spreads the writers out."""


async def open_section(command: OpenSection, new_uow: UnitOfWorkFactory) -> None:
    """Open a section. Raises `SectionAlreadyOpen` if the id is taken.

    Not retried: a conflict on a new stream means the section exists, which is final.
    """
    with _handling(command):
        async with new_uow() as uow:
            await uow.repository(Section).add(Section.open(command.section_id, command.capacity))
            try:
                await uow.commit()
            except WrongExpectedVersionError as error:
                raise SectionAlreadyOpen(command.section_id) from error


async def register_student(
    command: RegisterStudent, new_uow: UnitOfWorkFactory, *, attempts: int = DEFAULT_ATTEMPTS
) -> None:
    """Give a student a seat (`SectionFull`, `AlreadyRegistered` or `SectionNotFound` if not)."""

    def register(section: Section) -> None:
        section.register(command.student_id)

    with _handling(command):
        await _change_section(command.section_id, register, new_uow, attempts)


async def drop_student(
    command: DropStudent, new_uow: UnitOfWorkFactory, *, attempts: int = DEFAULT_ATTEMPTS
) -> None:
    """Free a student's seat (`NotRegistered` or `SectionNotFound` if not possible)."""

    def drop(section: Section) -> None:
        section.drop(command.student_id)

    with _handling(command):
        await _change_section(command.section_id, drop, new_uow, attempts)


@contextmanager
def _handling(command: Command) -> Iterator[None]:
    with message_context(
        command.command_id, correlation_id=command.correlation_id, actor=command.actor
    ):
        yield


async def _change_section(
    section_id: str,
    change: Callable[[Section], None],
    new_uow: UnitOfWorkFactory,
    attempts: int,
) -> None:
    async def attempt() -> None:
        async with new_uow() as uow:
            section = await _load(uow.repository(Section), section_id)
            change(section)
            await uow.commit()

    await retry_on_conflict(attempt, attempts=attempts)


async def _load(sections: Repository[Section], section_id: str) -> Section:
    try:
        return await sections.get(section_id)
    except AggregateNotFoundError as error:
        raise SectionNotFound(section_id) from error
