"""`SqlReadModels`: the queries of the read models the projections keep.

Pages are keyset-paginated (by section id, or by log position for the audit trail), so
a page costs the same however deep it is, and rows added meanwhile do not shift it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from university.registration.application.views import (
    AuditEntry,
    Page,
    ScheduleEntry,
    SectionAvailability,
    SectionSearch,
    StudentSchedule,
)
from university.registration.domain.values import Meeting
from university.registration.infrastructure.tables import RegistrationTables

__all__ = ["SqlReadModels"]


def _utc(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes: they were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _meetings(text: str) -> tuple[Meeting, ...]:
    return tuple(Meeting.model_validate(m) for m in json.loads(text))


class SqlReadModels:
    """The `ReadModels` of the application layer, on SQLite or PostgreSQL."""

    def __init__(self, engine: AsyncEngine, tables: RegistrationTables) -> None:
        self._engine = engine
        self._tables = tables
        s, c = tables.sections, tables.courses
        self._listing = select(s, c.c.title, c.c.department, c.c.credits).join_from(
            s, c, s.c.course_id == c.c.course_id
        )

    async def section(self, section_id: str) -> SectionAvailability | None:
        """The section's row, if it is offered."""
        s = self._tables.sections
        rows = await self._rows(self._listing.where(s.c.section_id == section_id))
        return _availability(rows[0]) if rows else None

    async def search(self, search: SectionSearch) -> Page[SectionAvailability]:
        """Sections of a term matching `search`, by section id."""
        s, c = self._tables.sections, self._tables.courses
        query = self._listing.where(s.c.term_id == search.term_id)
        if search.department is not None:
            query = query.where(c.c.department == search.department)
        if search.course_id is not None:
            query = query.where(s.c.course_id == search.course_id)
        if search.text:
            query = query.where(func.lower(c.c.title).contains(search.text.lower()))
        if search.open_only:
            query = query.where(s.c.capacity - s.c.enrolled - s.c.waitlisted > 0)
        if search.after is not None:
            query = query.where(s.c.section_id > search.after)
        rows = await self._rows(query.order_by(s.c.section_id).limit(search.limit + 1))
        items = [_availability(row) for row in rows[: search.limit]]
        more = len(rows) > search.limit
        return Page(items, items[-1].section_id if more else None)

    async def schedule(self, term_id: str, student_id: str) -> StudentSchedule:
        """The student's sections in the term (none if they have none)."""
        t = self._tables.schedule_entries
        query = (
            select(t)
            .where(t.c.term_id == term_id, t.c.student_id == student_id)
            .order_by(t.c.section_id)
        )
        entries = [
            ScheduleEntry(
                section_id=row.section_id,
                status=row.status,
                course_id=row.course_id,
                credits=row.credits,
                meetings=_meetings(row.meetings),
                since=_utc(row.since),
            )
            for row in await self._rows(query)
        ]
        return StudentSchedule(term_id, student_id, entries)

    async def section_audit(self, section_id: str, *, after: int, limit: int) -> Page[AuditEntry]:
        """Requests for the section (a swap's to or from it), oldest first."""
        t = self._tables.audit
        about = or_(t.c.section_id == section_id, t.c.other_section_id == section_id)
        return await self._audit_page(about, after, limit)

    async def student_audit(
        self, student_id: str, *, term_id: str | None, after: int, limit: int
    ) -> Page[AuditEntry]:
        """The student's requests (in one term, if given), oldest first."""
        t = self._tables.audit
        about = t.c.student_id == student_id
        if term_id is not None:
            about = about & (t.c.term_id == term_id)
        return await self._audit_page(about, after, limit)

    async def _audit_page(self, about: Any, after: int, limit: int) -> Page[AuditEntry]:
        t = self._tables.audit
        query = select(t).where(about, t.c.position > after).order_by(t.c.position)
        rows = await self._rows(query.limit(limit + 1))
        items = [_audit(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(items, str(items[-1].position) if more else None)

    async def _rows(self, query: Any) -> list[Row[Any]]:
        async with self._engine.connect() as conn:
            return list((await conn.execute(query)).all())


def _availability(row: Row[Any]) -> SectionAvailability:
    return SectionAvailability(
        section_id=row.section_id,
        term_id=row.term_id,
        course_id=row.course_id,
        title=row.title,
        department=row.department,
        credits=row.credits,
        meetings=_meetings(row.meetings),
        instructor=row.instructor,
        capacity=row.capacity,
        enrolled=row.enrolled,
        waitlist_capacity=row.waitlist_capacity,
        waitlisted=row.waitlisted,
        version=row.version,
    )


def _audit(row: Row[Any]) -> AuditEntry:
    return AuditEntry(
        position=row.position,
        recorded_at=_utc(row.recorded_at),
        term_id=row.term_id,
        student_id=row.student_id,
        section_id=row.section_id,
        other_section_id=row.other_section_id,
        action=row.action,
        outcome=row.outcome,
        reason_code=row.reason_code,
        detail=row.detail,
        actor=row.actor,
        correlation_id=row.correlation_id,
    )
