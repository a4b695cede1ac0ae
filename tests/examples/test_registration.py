"""The registration handlers, end to end on SQLite and PostgreSQL, under concurrency."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from sqlalchemy import inspect, text

from eventcore.testing.pytest_plugin import reachable_postgres_engine, throwaway_schema
from university.registration import Registration, bootstrap
from university.registration.application.commands import DropStudent, OpenSection, RegisterStudent
from university.registration.domain.errors import (
    AlreadyRegistered,
    NotRegistered,
    SectionAlreadyOpen,
    SectionFull,
    SectionNotFound,
)
from university.registration.domain.events import StudentRegistered
from university.registration.infrastructure.store import engine_for

pytestmark = pytest.mark.anyio

SECTION = "cs101"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def registration(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Registration]:
    """The context bootstrapped on a temporary SQLite file, then a throwaway PG schema."""
    if request.param == "sqlite":
        async with await bootstrap(f"sqlite+aiosqlite:///{tmp_path / 'reg.db'}") as context:
            yield context
        return
    engine = await reachable_postgres_engine()
    schema = throwaway_schema()
    try:
        yield await bootstrap(engine, schema=schema)
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()


async def register_concurrently(
    registration: Registration, students: list[str]
) -> tuple[list[str], list[str]]:
    """Register every student at once; return (registered, rejected as full)."""
    registered: list[str] = []
    full: list[str] = []

    async def register(student_id: str) -> None:
        try:
            await registration.register_student(RegisterStudent(SECTION, student_id))
        except SectionFull:
            full.append(student_id)
        else:
            registered.append(student_id)

    async with anyio.create_task_group() as tasks:
        for student_id in students:
            tasks.start_soon(register, student_id)
    return registered, full


async def test_fifty_concurrent_registrations_fill_thirty_seats(
    registration: Registration,
) -> None:
    await registration.open_section(OpenSection(SECTION, 30))
    students = [f"s-{n:02d}" for n in range(50)]

    registered, full = await register_concurrently(registration, students)

    assert (len(registered), len(full)) == (30, 20)
    assert sorted(registered + full) == students
    section = await registration.section(SECTION)
    assert section.students == set(registered)
    assert (section.version, section.seats_left) == (31, 0)
    history = await registration.history(SECTION)
    seats = [r.event.student_id for r in history[1:] if isinstance(r.event, StudentRegistered)]
    assert sorted(seats) == sorted(registered)  # one event per seat, no duplicate
    assert [r.version for r in history] == list(range(1, 32))


async def test_events_carry_the_commands_correlation_causation_and_actor(
    registration: Registration,
) -> None:
    opening = OpenSection(SECTION, 5, actor="dean")
    await registration.open_section(opening)
    register = RegisterStudent(SECTION, "ada", correlation_id="enrolment-week", actor="ada")
    await registration.register_student(register)

    opened, ada = await registration.history(SECTION)

    assert (opened.correlation_id, opened.causation_id) == (opening.command_id,) * 2
    assert opened.metadata.actor == "dean"
    assert (ada.correlation_id, ada.causation_id) == ("enrolment-week", register.command_id)
    assert ada.metadata.actor == "ada"
    assert opened.event_type == "registration.SectionOpened"
    assert opened.stream_type == "registration.Section"


async def test_a_dropped_seat_goes_to_a_late_registration(registration: Registration) -> None:
    await registration.open_section(OpenSection(SECTION, 1))
    await registration.register_student(RegisterStudent(SECTION, "ada"))
    with pytest.raises(SectionFull):
        await registration.register_student(RegisterStudent(SECTION, "bob"))

    await registration.drop_student(DropStudent(SECTION, "ada"))
    await registration.register_student(RegisterStudent(SECTION, "bob"))

    section = await registration.section(SECTION)
    assert (section.students, section.version) == (frozenset({"bob"}), 4)


async def test_domain_errors_reach_the_caller_and_record_nothing(
    registration: Registration,
) -> None:
    await registration.open_section(OpenSection(SECTION, 2))
    await registration.register_student(RegisterStudent(SECTION, "ada"))

    with pytest.raises(SectionAlreadyOpen):
        await registration.open_section(OpenSection(SECTION, 3))
    with pytest.raises(AlreadyRegistered):
        await registration.register_student(RegisterStudent(SECTION, "ada"))
    with pytest.raises(NotRegistered):
        await registration.drop_student(DropStudent(SECTION, "bob"))
    with pytest.raises(SectionNotFound):
        await registration.register_student(RegisterStudent("nope", "ada"))
    with pytest.raises(SectionNotFound):
        await registration.section("nope")

    assert len(await registration.history(SECTION)) == 2


async def test_the_context_owns_its_prefixed_tables(registration: Registration) -> None:
    store = registration.store
    async with store.engine.connect() as conn:
        names = await conn.run_sync(
            lambda sync: inspect(sync).get_table_names(schema=store.tables.schema)
        )
    assert {"registration_events", "registration_snapshots"} <= set(names)
    assert not any(name.startswith("eventcore_") for name in names)


async def test_a_url_engine_is_disposed_but_a_given_engine_is_not(tmp_path: Path) -> None:
    engine = engine_for(f"sqlite:///{tmp_path / 'own.db'}")
    async with await bootstrap(engine) as context:
        await context.open_section(OpenSection(SECTION, 1))
    async with engine.connect() as conn:  # still usable: the caller owns it
        assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
    await engine.dispose()


def test_unsupported_databases_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported database 'mysql'"):
        engine_for("mysql://localhost/university")
