"""The demo: `python -m university [--database-url URL]`.

Opens a section with 30 seats, lets 50 students register for it at the same moment,
then frees a seat and gives it to a student who was turned away. Runs on a throwaway
SQLite file unless `--database-url` names another database (e.g. PostgreSQL).
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
from collections.abc import Sequence
from pathlib import Path

import anyio
from sqlalchemy import make_url

from eventcore import RecordedEvent
from university.registration import Registration, bootstrap
from university.registration.application.commands import DropStudent, OpenSection, RegisterStudent
from university.registration.domain.errors import SectionFull

__all__ = ["main", "run_demo"]

CAPACITY = 30
STUDENTS = 50
DESCRIPTION = "50 students race for 30 seats in an event-sourced course section."


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; return the process exit status (0 on success)."""
    parser = argparse.ArgumentParser(prog="university", description=DESCRIPTION)
    parser.add_argument(
        "--database-url",
        help="e.g. postgresql+asyncpg://user@host/db (default: a temporary SQLite file)",
    )
    args = parser.parse_args(argv)
    if args.database_url:
        anyio.run(run_demo, args.database_url)
    else:
        with tempfile.TemporaryDirectory(prefix="university-") as tmp:
            anyio.run(run_demo, f"sqlite+aiosqlite:///{Path(tmp) / 'university.db'}")
    return 0


async def run_demo(database_url: str) -> None:
    """Run the whole demo against `database_url`, printing what happens."""
    print(f"University registration on {make_url(database_url).render_as_string()}")
    section_id = f"cs101-{secrets.token_hex(2)}"  # unique, so reruns on one database work
    async with await bootstrap(database_url) as registration:
        await registration.open_section(OpenSection(section_id=section_id, capacity=CAPACITY))
        print(f"Opened section {section_id} with {CAPACITY} seats.")
        registered, full = await _rush(registration, section_id)
        _report_rush(registered, full, await registration.history(section_id))
        await _swap(registration, section_id, leaving=registered[0], joining=full[0])
        section = await registration.section(section_id)
        print(
            f"Done: {len(section.students)}/{section.capacity} seats taken, "
            f"version {section.version}."
        )


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


if __name__ == "__main__":
    raise SystemExit(main())
