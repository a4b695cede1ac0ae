"""`SqlStudentDirectory`: registration's view of the students, in its own tables.

Writes are upserts, so they are idempotent, and guarded so that their order does not
matter: a student row keeps the highest revision heard of; a hold row remembers both
that it was placed and that it was lifted, whichever came first. Each write is one
statement for any number of rows (an `executemany`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from university.registration.application.ports import (
    AdmittedStudent,
    CompletedCourse,
    LiftedHold,
    PlacedHold,
)
from university.registration.domain.values import Hold, Level, StudentRecord
from university.registration.infrastructure.tables import RegistrationTables

__all__ = ["SqlStudentDirectory"]


def _insert(connection: AsyncConnection) -> Any:
    return pg_insert if connection.dialect.name == "postgresql" else sqlite_insert


class SqlStudentDirectory:
    """The `StudentDirectory` of the application layer, on SQLite or PostgreSQL."""

    def __init__(self, tables: RegistrationTables) -> None:
        self._students = tables.students
        self._holds = tables.holds
        self._completed = tables.completed_courses

    async def record_of(self, connection: AsyncConnection, student_id: str) -> StudentRecord | None:
        """What is known of `student_id` (`None`: never admitted)."""
        s, h, c = self._students, self._holds, self._completed
        row = (await connection.execute(select(s).where(s.c.student_id == student_id))).first()
        if row is None:
            return None
        holds = await connection.execute(
            select(h).where(h.c.student_id == student_id, h.c.placed, ~h.c.lifted)
        )
        completed = await connection.execute(
            select(c.c.course_id).where(c.c.student_id == student_id)
        )
        return StudentRecord(
            student_id=student_id,
            level=Level(row.level),
            earned_credits=row.earned_credits,
            holds=tuple(
                Hold(
                    hold_id=hold.hold_id,
                    hold_type=hold.hold_type,
                    blocks_registration=hold.blocks_registration,
                    starts_on=hold.starts_on,
                    ends_on=hold.ends_on,
                    reason=hold.reason,
                )
                for hold in holds
            ),
            completed_courses=frozenset(completed.scalars()),
        )

    async def admit(self, connection: AsyncConnection, students: Sequence[AdmittedStudent]) -> None:
        """Keep each student's standing, unless a newer revision is kept."""
        if not students:
            return
        t = self._students
        statement = _insert(connection)(t)
        new = statement.excluded
        upsert = statement.on_conflict_do_update(
            index_elements=[t.c.student_id],
            set_={"level": new.level, "earned_credits": new.earned_credits,
                  "revision": new.revision},
            where=t.c.revision < new.revision,
        )  # fmt: skip
        rows = [
            {"student_id": s.student_id, "level": s.level.value,
             "earned_credits": s.earned_credits, "revision": s.revision}
            for s in students
        ]  # fmt: skip
        await connection.execute(upsert, rows)

    async def place_holds(self, connection: AsyncConnection, holds: Sequence[PlacedHold]) -> None:
        """Keep the holds; one lifted before it was heard of as placed stays lifted."""
        if not holds:
            return
        t = self._holds
        statement = _insert(connection)(t)
        new = statement.excluded
        upsert = statement.on_conflict_do_update(
            index_elements=[t.c.hold_id],
            set_={"hold_type": new.hold_type, "blocks_registration": new.blocks_registration,
                  "starts_on": new.starts_on, "ends_on": new.ends_on, "reason": new.reason,
                  "placed": True},
        )  # fmt: skip
        rows = [
            {"hold_id": p.hold.hold_id, "student_id": p.student_id,
             "hold_type": p.hold.hold_type, "blocks_registration": p.hold.blocks_registration,
             "starts_on": p.hold.starts_on, "ends_on": p.hold.ends_on, "reason": p.hold.reason,
             "placed": True, "lifted": False}
            for p in holds
        ]  # fmt: skip
        await connection.execute(upsert, rows)

    async def lift_holds(self, connection: AsyncConnection, holds: Sequence[LiftedHold]) -> None:
        """Mark the holds lifted (remembered even before they are heard of as placed)."""
        if not holds:
            return
        t = self._holds
        statement = _insert(connection)(t)
        upsert = statement.on_conflict_do_update(
            index_elements=[t.c.hold_id], set_={"lifted": True}
        )
        rows = [
            {"hold_id": lift.hold_id, "student_id": lift.student_id, "hold_type": "",
             "blocks_registration": False, "starts_on": None, "ends_on": None, "reason": "",
             "placed": False, "lifted": True}
            for lift in holds
        ]  # fmt: skip
        await connection.execute(upsert, rows)

    async def complete_courses(
        self, connection: AsyncConnection, courses: Sequence[CompletedCourse]
    ) -> None:
        """Keep the completed courses (a course completed twice is kept once)."""
        if not courses:
            return
        t = self._completed
        statement = _insert(connection)(t).on_conflict_do_nothing()
        rows = [
            {"student_id": c.student_id, "course_id": c.course_id, "term_id": c.term_id,
             "grade": c.grade}
            for c in courses
        ]  # fmt: skip
        await connection.execute(statement, rows)
