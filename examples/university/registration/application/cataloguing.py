"""The registrar's commands: schedule a term, catalogue courses, offer sections, change seats.

Creating commands come one at a time or in batches (a whole catalogue at start-up):
a batch is one unit of work, so one transaction, whatever its size; each aggregate's
events still carry the metadata of the command that made it. A stream that exists
already makes the whole batch fail with `AlreadyExists`, nothing written.
"""

from __future__ import annotations

from collections.abc import Sequence

from eventcore import UnitOfWork, WrongExpectedVersionError
from university.registration.application.commands import (
    CatalogueCourse,
    ChangeCapacity,
    OfferSection,
    ScheduleTerm,
)
from university.registration.application.loading import (
    Services,
    find_section,
    handling,
    load_course,
    load_term,
)
from university.registration.application.results import Accepted, last_position
from university.registration.domain.course import Course
from university.registration.domain.errors import AlreadyExists, NotFound
from university.registration.domain.section import Section
from university.registration.domain.term import Term

__all__ = ["catalogue_courses", "change_capacity", "offer_sections", "schedule_term"]


async def schedule_term(command: ScheduleTerm, services: Services) -> Accepted:
    """Set up a term (`AlreadyExists` if its id is taken, `InvalidTerm` if it makes no sense)."""
    with handling(command):
        term = Term.schedule(
            command.term_id,
            name=command.name,
            starts_on=command.starts_on,
            ends_on=command.ends_on,
            time_tickets=command.time_tickets,
            add_deadline=command.add_deadline,
            drop_deadline=command.drop_deadline,
            credit_limits=command.credit_limits,
        )
        async with services.new_unit_of_work() as uow:
            await uow.repository(Term).add(term)
            return Accepted(command.command_id, await _commit_new(uow))


async def catalogue_courses(
    commands: Sequence[CatalogueCourse], services: Services
) -> list[Accepted]:
    """Add courses to the catalogue, in one transaction (`AlreadyExists`, `InvalidCourse`)."""
    async with services.new_unit_of_work() as uow:
        courses = uow.repository(Course)
        for command in commands:
            with handling(command):
                course = Course.catalogue(
                    command.course_id,
                    title=command.title,
                    department=command.department,
                    credits=command.credits,
                    level=command.level,
                    prerequisites=command.prerequisites,
                    restricted_to=command.restricted_to,
                )
            await courses.add(course)
        position = await _commit_new(uow)
    return [Accepted(c.command_id, position) for c in commands]


async def offer_sections(commands: Sequence[OfferSection], services: Services) -> list[Accepted]:
    """Offer sections in scheduled terms, in one transaction (`NotFound` for an unknown
    term or course, `AlreadyExists`, `InvalidSection`)."""
    async with services.new_unit_of_work() as uow:
        sections = uow.repository(Section)
        terms: set[str] = set()
        courses: dict[str, Course] = {}
        for command in commands:
            if command.term_id not in terms:
                await load_term(uow, command.term_id)
                terms.add(command.term_id)
            course = courses.get(command.course_id)
            if course is None:
                course = courses[command.course_id] = await load_course(uow, command.course_id)
            with handling(command):
                section = Section.offer(
                    command.section_id,
                    term_id=command.term_id,
                    course=course,
                    meetings=command.meetings,
                    capacity=command.capacity,
                    waitlist_capacity=command.waitlist_capacity,
                    instructor=command.instructor,
                )
            await sections.add(section)
        position = await _commit_new(uow)
    return [Accepted(c.command_id, position) for c in commands]


async def change_capacity(command: ChangeCapacity, services: Services) -> Accepted:
    """Change a section's seats (`NotFound`, `InvalidSection` below who holds or waits).

    Seats it frees go to the waitlist, through the waitlist process.
    """

    async def attempt() -> Accepted:
        async with services.new_unit_of_work() as uow:
            await services.gate.lock(uow.connection, [stream])
            section = await find_section(uow, command.section_id)
            if section is None:
                raise NotFound("section", command.section_id)
            section.change_capacity(command.capacity, command.waitlist_capacity)
            position = last_position(await uow.commit())
        return Accepted(command.command_id, position)

    stream = Section.stream_id(command.section_id)
    with handling(command):
        async with services.gate.entered([stream]):
            return await services.retries(attempt)


async def _commit_new(uow: UnitOfWork) -> int:
    """Commit new streams; one that exists already is `AlreadyExists`."""
    try:
        return last_position(await uow.commit())
    except WrongExpectedVersionError as error:
        kind, _, key = error.stream_id.partition(":")
        raise AlreadyExists(kind, key) from error
