"""The demo: registration under peak load, and records following it through the outbox.

Opens a section with 30 seats, lets 50 students register for it at the same moment,
then frees a seat and gives it to a student who was turned away. Every change is also
an integration event in registration's outbox; the relay publishes them and the records
context consumes them, until records lists exactly the students registration seated.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import anyio
from sqlalchemy import make_url

from eventcore import RecordedEvent
from university import records as records_context
from university import registration as registration_context
from university.messaging import Broker
from university.records import Records
from university.registration import Registration
from university.registration.application.commands import DropStudent, OpenSection, RegisterStudent
from university.registration.domain.errors import SectionFull
from university.settings import Settings

__all__ = ["CAPACITY", "STUDENTS", "run_demo"]

CAPACITY = 30
STUDENTS = 50


async def run_demo(
    settings: Settings, *, external: bool = False, catch_up_timeout: float = 30.0
) -> bool:
    """Run the demo, printing what happens; return whether records matched registration.

    `settings.database_url` must be set. With `external`, the relay and the records
    consumer are other processes (`university relay`, `university records`); otherwise
    they run here, in a task group that ends with the demo.
    """
    if settings.database_url is None:
        raise ValueError("run_demo needs settings.database_url")
    url, schema = settings.database_url, settings.schema
    broker = settings.broker()
    print(f"University on {make_url(url).render_as_string()}, messages through {broker.describe()}")
    async with (
        await registration_context.bootstrap(url, schema=schema) as registration,
        await records_context.bootstrap(url, schema=schema) as records,
    ):
        if external:
            section_id, leaving, joining = await _register(registration)
            return await _caught_up(
                registration, records, section_id, leaving, joining, catch_up_timeout
            )
        return await _in_one_process(broker, registration, records, catch_up_timeout)


async def _in_one_process(
    broker: Broker, registration: Registration, records: Records, catch_up_timeout: float
) -> bool:
    """Run the relay and the records consumer beside the demo, then stop them."""
    await broker.subscribe(records.subscription)  # keep what is published from now on
    publisher = broker.publisher(registration.topics)
    source = broker.source(records.subscription)
    relay, worker = registration.relay(publisher), records.worker(source)
    try:
        async with anyio.create_task_group() as services:
            services.start_soon(relay.run)
            services.start_soon(worker.run)
            section_id, leaving, joining = await _register(registration)
            matched = await _caught_up(
                registration, records, section_id, leaving, joining, catch_up_timeout
            )
            services.cancel_scope.cancel()  # the relay records its last batch as it stops
        print(
            f"Outbox relay published {relay.metrics.published} messages; records "
            f"handled {worker.handled}, skipped {worker.duplicates} duplicates."
        )
    finally:
        await publisher.close()
        await source.close()
    return matched


async def _register(registration: Registration) -> tuple[str, str, str]:
    """Registration's part; returns the section id, who dropped and who took the seat."""
    section_id = f"cs101-{secrets.token_hex(2)}"  # unique, so reruns on one database work
    await registration.open_section(OpenSection(section_id=section_id, capacity=CAPACITY))
    print(f"Opened section {section_id} with {CAPACITY} seats.")
    registered, full = await _rush(registration, section_id)
    _report_rush(registered, full, await registration.history(section_id))
    leaving, joining = registered[0], full[0]
    await _swap(registration, section_id, leaving=leaving, joining=joining)
    section = await registration.section(section_id)
    print(
        f"Done: {len(section.students)}/{section.capacity} seats taken, version {section.version}."
    )
    return section_id, leaving, joining


async def _rush(registration: Registration, section_id: str) -> tuple[list[str], list[str]]:
    """Register every student concurrently; return (registered, rejected as full)."""
    registered: list[str] = []
    full: list[str] = []

    async def register(student_id: str) -> None:
        try:
            await registration.register_student(
                RegisterStudent(section_id=section_id, student_id=student_id)
            )
        except SectionFull:
            full.append(student_id)
        else:
            registered.append(student_id)

    async with anyio.create_task_group() as tasks:
        for n in range(1, STUDENTS + 1):
            tasks.start_soon(register, f"student-{n:02d}")
    return sorted(registered), sorted(full)


def _report_rush(registered: list[str], full: list[str], history: list[RecordedEvent]) -> None:
    print(f"{STUDENTS} students tried to register at the same moment:")
    print(f"  registered: {len(registered)}, rejected as full: {len(full)}")
    print(f"  section version: {history[-1].version} (opened + one event per seat)")
    print("First events (correlation = the command that caused them):")
    _show(history[:3])


async def _swap(registration: Registration, section_id: str, leaving: str, joining: str) -> None:
    """Drop `leaving`, then register `joining` in the same conversation (correlation)."""
    drop = DropStudent(section_id=section_id, student_id=leaving, actor=leaving)
    await registration.drop_student(drop)
    late = RegisterStudent(
        section_id=section_id, student_id=joining, correlation_id=drop.command_id
    )
    await registration.register_student(late)
    print(f"{leaving} dropped; {joining}, turned away before, took the seat (same conversation):")
    _show((await registration.history(section_id))[-2:])


def _show(events: Sequence[RecordedEvent]) -> None:
    for recorded in events:
        who = getattr(recorded.event, "student_id", recorded.metadata.actor) or "-"
        print(
            f"  v{recorded.version:<3} {recorded.event_type:<31} {who:<11} "
            f"correlation {recorded.correlation_id}"
        )


async def _caught_up(
    registration: Registration,
    records: Records,
    section_id: str,
    leaving: str,
    joining: str,
    timeout: float,
) -> bool:
    """Wait (at most `timeout` s) until records lists the students registration seated."""
    expected = sorted((await registration.section(section_id)).students)
    listed = await records.class_list(section_id)
    with anyio.move_on_after(timeout):
        while listed != expected:
            await anyio.sleep(0.02)
            listed = await records.class_list(section_id)
    if listed != expected:
        print(
            f"records: {len(listed)} students enrolled in {section_id} after {timeout:g} s, "
            f"registration seated {len(expected)}: is `university records` running?"
        )
        return False
    print(f"records: {len(listed)} students enrolled in {section_id}, matching registration.")
    left, joined = [await _standing(records, s, section_id) for s in (leaving, joining)]
    print(f"records: {leaving} {left}, {joining} {joined}.")
    return True


async def _standing(records: Records, student_id: str, section_id: str) -> str:
    for enrolment in await records.enrolments_of(student_id):
        if enrolment.section_id == section_id:
            return f"{enrolment.standing} (as of v{enrolment.sequence})"
    return "unknown"
