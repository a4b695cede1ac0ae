"""The student's requests: register, drop, swap. One small handler each.

Each handler waits for the section's turn in this process (`StreamGate`), then, per
attempt, opens a unit of work, loads what the decision needs, lets the schedule decide,
applies the decision to the section(s), and commits every changed stream in one
transaction, each expected at the version it was loaded at. A refusal commits too: it
is recorded in the student's schedule stream. When another writer committed first,
the attempt conflicts and runs again on the new state (`Retries`).
"""

from __future__ import annotations

from eventcore import UnitOfWork
from university.registration.application.commands import (
    DropSection,
    RegisterForSection,
    SwapSections,
)
from university.registration.application.loading import (
    Services,
    find_section,
    handling,
    load_course,
    load_or_open_schedule,
    load_term,
)
from university.registration.application.results import (
    Decision,
    DropDecision,
    RegistrationDecision,
    SwapDecision,
    last_position,
)
from university.registration.domain.reasons import Action, SectionNotFound
from university.registration.domain.requests import (
    AddRequest,
    Dropped,
    Enrolled,
    Refused,
    Swapped,
    Waitlisted,
)
from university.registration.domain.schedule import Schedule
from university.registration.domain.section import Section
from university.registration.domain.term import Term

__all__ = ["drop_section", "register_for_section", "swap_sections"]


async def register_for_section(
    command: RegisterForSection, services: Services
) -> RegistrationDecision:
    """Enrol the student, waitlist them, or refuse with the reason (recorded)."""

    async def attempt() -> RegistrationDecision:
        async with services.new_unit_of_work() as uow:
            await services.gate.lock(uow.connection, [section_stream])
            outcome = await _register(command, services, uow)
            position = last_position(await uow.commit())
        return Decision(outcome, command.command_id, position)

    section_stream = Section.stream_id(command.section_id)
    with handling(command):
        async with services.gate.entered([section_stream]):
            return await services.retries(attempt)


async def _register(
    command: RegisterForSection, services: Services, uow: UnitOfWork
) -> Enrolled | Waitlisted | Refused:
    term = await load_term(uow, command.term_id)
    schedules = uow.repository(Schedule)
    schedule = await load_or_open_schedule(schedules, command.term_id, command.student_id)
    section = await find_section(uow, command.section_id, command.term_id)
    if section is None:
        reason = SectionNotFound(section_id=command.section_id, term_id=command.term_id)
        return schedule.refuse(Action.REGISTER, command.section_id, reason)
    request = await _add_request(services, uow, term, section, command.student_id)
    outcome = schedule.register(request)
    if isinstance(outcome, Enrolled):
        section.take_seat(command.student_id)
    elif isinstance(outcome, Waitlisted):
        section.join_waitlist(command.student_id)
    return outcome


async def drop_section(command: DropSection, services: Services) -> DropDecision:
    """Free the student's seat (or place in line), or refuse with the reason (recorded)."""

    async def attempt() -> DropDecision:
        async with services.new_unit_of_work() as uow:
            await services.gate.lock(uow.connection, [section_stream])
            outcome = await _drop(command, services, uow)
            position = last_position(await uow.commit())
        return Decision(outcome, command.command_id, position)

    section_stream = Section.stream_id(command.section_id)
    with handling(command):
        async with services.gate.entered([section_stream]):
            return await services.retries(attempt)


async def _drop(command: DropSection, services: Services, uow: UnitOfWork) -> Dropped | Refused:
    term = await load_term(uow, command.term_id)
    schedules = uow.repository(Schedule)
    schedule = await load_or_open_schedule(schedules, command.term_id, command.student_id)
    student = await services.directory.record_of(uow.connection, command.student_id)
    window = None if student is None else term.window_for(student)
    outcome = schedule.drop(command.section_id, window, services.clock())
    if isinstance(outcome, Dropped):
        section = await find_section(uow, command.section_id, command.term_id)
        assert section is not None  # it is on the schedule, so it is offered
        if outcome.was_waitlisted:
            section.leave_waitlist(command.student_id)
        else:
            section.release_seat(command.student_id)
    return outcome


async def swap_sections(command: SwapSections, services: Services) -> SwapDecision:
    """Drop one section and add another in one decision; if the add is refused, nothing
    changes (the student keeps the seat they had) and the refusal is recorded."""

    async def attempt() -> SwapDecision:
        async with services.new_unit_of_work() as uow:
            await services.gate.lock(uow.connection, streams)
            outcome = await _swap(command, services, uow)
            position = last_position(await uow.commit())
        return Decision(outcome, command.command_id, position)

    streams = [
        Section.stream_id(command.drop_section_id),
        Section.stream_id(command.add_section_id),
    ]
    with handling(command):
        async with services.gate.entered(streams):
            return await services.retries(attempt)


async def _swap(command: SwapSections, services: Services, uow: UnitOfWork) -> Swapped | Refused:
    term = await load_term(uow, command.term_id)
    schedules = uow.repository(Schedule)
    schedule = await load_or_open_schedule(schedules, command.term_id, command.student_id)
    adding = await find_section(uow, command.add_section_id, command.term_id)
    if adding is None:
        reason = SectionNotFound(section_id=command.add_section_id, term_id=command.term_id)
        return schedule.refuse(Action.SWAP, command.add_section_id, reason,
                               other=command.drop_section_id)  # fmt: skip
    request = await _add_request(services, uow, term, adding, command.student_id)
    outcome = schedule.swap(command.drop_section_id, request)
    if isinstance(outcome, Swapped):
        dropping = await find_section(uow, command.drop_section_id, command.term_id)
        assert dropping is not None  # it is on the schedule, so it is offered
        dropping.release_seat(command.student_id, via=Action.SWAP)
        adding.take_seat(command.student_id)
    return outcome


async def _add_request(
    services: Services, uow: UnitOfWork, term: Term, section: Section, student_id: str
) -> AddRequest:
    course = await load_course(uow, section.course_id)
    student = await services.directory.record_of(uow.connection, student_id)
    return AddRequest.of(term, course, section, student_id, student, services.clock())
