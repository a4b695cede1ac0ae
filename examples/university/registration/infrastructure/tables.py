"""The registration context's own tables, next to its event store's (same prefix and schema).

- The student directory, kept from records' events: `registration_students`,
  `registration_holds`, `registration_completed_courses`.
- The read models, kept by projections: `registration_courses`, `registration_sections`
  (seats and waitlist of each section), `registration_schedule_entries` (each student's
  sections), `registration_audit` (every request and its outcome, refusals included).

Meeting times and prerequisites are stored as JSON text (not a JSON column), so the
projections' batched inserts take the driver's fast path.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    Uuid,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from eventcore import SqlAlchemyEventStore

__all__ = ["RegistrationTables"]

_ID = 64  # ids of terms, courses, sections and students


class RegistrationTables:
    """The tables, defined in `store.tables.metadata` (so migrations see them too)."""

    def __init__(self, store: SqlAlchemyEventStore) -> None:
        metadata, schema = store.tables.metadata, store.tables.schema
        prefix = store.tables.events.name.removesuffix("events")
        self._engine: AsyncEngine = store.engine
        self.students = Table(
            f"{prefix}students",
            metadata,
            Column("student_id", String(_ID), primary_key=True),
            Column("level", String(16), nullable=False),
            Column("earned_credits", Integer(), nullable=False),
            Column("revision", Integer(), nullable=False),
            schema=schema,
        )
        self.holds = Table(
            f"{prefix}holds",
            metadata,
            Column("hold_id", String(_ID), primary_key=True),
            Column("student_id", String(_ID), nullable=False, index=True),
            Column("hold_type", String(64), nullable=False),
            Column("blocks_registration", Boolean(), nullable=False),
            Column("starts_on", Date(), nullable=True),
            Column("ends_on", Date(), nullable=True),
            Column("reason", Text(), nullable=False),
            Column("placed", Boolean(), nullable=False),
            Column("lifted", Boolean(), nullable=False),
            schema=schema,
        )
        self.completed_courses = Table(
            f"{prefix}completed_courses",
            metadata,
            Column("student_id", String(_ID), primary_key=True),
            Column("course_id", String(_ID), primary_key=True),
            Column("term_id", String(_ID), nullable=False),
            Column("grade", String(8), nullable=False),
            schema=schema,
        )
        self.courses = Table(
            f"{prefix}courses",
            metadata,
            Column("course_id", String(_ID), primary_key=True),
            Column("title", String(255), nullable=False),
            Column("department", String(64), nullable=False, index=True),
            Column("credits", Integer(), nullable=False),
            Column("level", String(16), nullable=False),
            Column("prerequisites", Text(), nullable=False),
            schema=schema,
        )
        self.sections = Table(
            f"{prefix}sections",
            metadata,
            Column("section_id", String(_ID), primary_key=True),
            Column("term_id", String(_ID), nullable=False),
            Column("course_id", String(_ID), nullable=False),
            Column("meetings", Text(), nullable=False),
            Column("instructor", String(255), nullable=False),
            Column("capacity", Integer(), nullable=False),
            Column("waitlist_capacity", Integer(), nullable=False),
            Column("enrolled", Integer(), nullable=False),
            Column("waitlisted", Integer(), nullable=False),
            Column("version", Integer(), nullable=False),
            Index(f"{prefix}sections_by_term", "term_id", "course_id", "section_id"),
            schema=schema,
        )
        self.schedule_entries = Table(
            f"{prefix}schedule_entries",
            metadata,
            Column("term_id", String(_ID), primary_key=True),
            Column("student_id", String(_ID), primary_key=True),
            Column("section_id", String(_ID), primary_key=True),
            Column("status", String(16), nullable=False),
            Column("course_id", String(_ID), nullable=False),
            Column("credits", Integer(), nullable=False),
            Column("meetings", Text(), nullable=False),
            Column("since", DateTime(timezone=True), nullable=False),
            schema=schema,
        )
        self.audit = Table(
            f"{prefix}audit",
            metadata,
            Column("event_id", Uuid(), primary_key=True),
            Column("position", BigInteger(), nullable=False, index=True),
            Column("term_id", String(_ID), nullable=False),
            Column("student_id", String(_ID), nullable=False),
            Column("section_id", String(_ID), nullable=False),
            Column("other_section_id", String(_ID), nullable=True),
            Column("action", String(16), nullable=False),
            Column("outcome", String(16), nullable=False),
            Column("reason_code", String(32), nullable=True),
            Column("detail", Text(), nullable=False),
            Column("actor", String(255), nullable=True),
            Column("correlation_id", String(255), nullable=True),
            Column("recorded_at", DateTime(timezone=True), nullable=False),
            Index(f"{prefix}audit_by_section", "section_id", "position"),
            Index(f"{prefix}audit_by_other_section", "other_section_id", "position"),
            Index(f"{prefix}audit_by_student", "student_id", "position"),
            schema=schema,
        )

    @property
    def all(self) -> tuple[Table, ...]:
        """Every table of the context besides the event store's."""
        return (
            self.students,
            self.holds,
            self.completed_courses,
            self.courses,
            self.sections,
            self.schedule_entries,
            self.audit,
        )

    async def create(self) -> None:
        """Create the tables if they are missing (demos and tests; use migrations otherwise)."""

        def create(sync: object) -> None:
            for table in self.all:
                table.create(sync, checkfirst=True)  # type: ignore[arg-type]

        async with self._engine.begin() as conn:
            await conn.run_sync(create)
