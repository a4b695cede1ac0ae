"""What callers may ask registration, and where the answers come from.

Current state comes from the read models (projections), never from replaying streams
per request: section availability, catalogue search, a student's schedule, the audit
trail of a section or a student. "As it was at time T" (temporal queries) and "show me
its history" read the stream itself: that is what an event-sourced stream is for.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Protocol, TypeVar

from eventcore import AggregateNotFoundError, EventStore, RecordedEvent, Repository
from university.registration.application.views import (
    AuditEntry,
    HistoryEntry,
    Page,
    ScheduleState,
    SectionAvailability,
    SectionSearch,
    SectionState,
    StudentSchedule,
)
from university.registration.domain.errors import NotFound
from university.registration.domain.schedule import Schedule
from university.registration.domain.section import Section

__all__ = ["ReadModels", "RegistrationQueries"]

A = TypeVar("A", Section, Schedule)

MAX_PAGE = 200
"""The largest page a query returns, whatever the limit asked for."""


class ReadModels(Protocol):
    """The projections' tables, queried (the infrastructure implements it)."""

    async def section(self, section_id: str) -> SectionAvailability | None:
        """The section's row, if it is offered."""
        ...

    async def search(self, search: SectionSearch) -> Page[SectionAvailability]:
        """Sections of a term matching `search`, by section id."""
        ...

    async def schedule(self, term_id: str, student_id: str) -> StudentSchedule:
        """The student's sections in the term (none if they have none)."""
        ...

    async def section_audit(self, section_id: str, *, after: int, limit: int) -> Page[AuditEntry]:
        """Requests for the section (a swap's to or from it), oldest first."""
        ...

    async def student_audit(
        self, student_id: str, *, term_id: str | None, after: int, limit: int
    ) -> Page[AuditEntry]:
        """The student's requests (in one term, if given), oldest first."""
        ...


class RegistrationQueries:
    """The queries of the registration context: read models, and the streams' past."""

    def __init__(self, read_models: ReadModels, store: EventStore) -> None:
        self._read = read_models
        self._store = store

    async def section(self, section_id: str) -> SectionAvailability:
        """The section's seats and waitlist now (`NotFound` if it is not offered)."""
        found = await self._read.section(section_id)
        if found is None:
            raise NotFound("section", section_id)
        return found

    async def search(self, search: SectionSearch) -> Page[SectionAvailability]:
        """Sections of a term, filtered and paginated (`search.after`: a page's cursor)."""
        limit = min(max(search.limit, 1), MAX_PAGE)
        return await self._read.search(_with_limit(search, limit))

    async def schedule(self, term_id: str, student_id: str) -> StudentSchedule:
        """A student's sections in a term now."""
        return await self._read.schedule(term_id, student_id)

    async def section_audit(
        self, section_id: str, *, after: str | None = None, limit: int = 50
    ) -> Page[AuditEntry]:
        """Every request about a section and its outcome, refusals included."""
        return await self._read.section_audit(
            section_id, after=_position(after), limit=min(max(limit, 1), MAX_PAGE)
        )

    async def student_audit(
        self,
        student_id: str,
        *,
        term_id: str | None = None,
        after: str | None = None,
        limit: int = 50,
    ) -> Page[AuditEntry]:
        """Every request a student made and its outcome, refusals included."""
        return await self._read.student_audit(
            student_id, term_id=term_id, after=_position(after), limit=min(max(limit, 1), MAX_PAGE)
        )

    async def section_as_of(self, section_id: str, at: datetime | None = None) -> SectionState:
        """The section as it was at `at` (now if `None`); `NotFound` if not offered then."""
        section = await self._load(Section, Section.stream_id(section_id), "section", at)
        return SectionState(
            section_id=section.section_id,
            version=section.version,
            capacity=section.capacity,
            waitlist_capacity=section.waitlist_capacity,
            enrolled=tuple(sorted(section.enrolled)),
            waitlist=tuple(section.waitlist),
        )

    async def schedule_as_of(
        self, term_id: str, student_id: str, at: datetime | None = None
    ) -> ScheduleState:
        """The student's schedule as it was at `at` (now if `None`)."""
        stream = Schedule.stream_id(term_id, student_id)
        schedule = await self._load(Schedule, stream, "schedule", at)
        return ScheduleState(
            term_id=term_id,
            student_id=student_id,
            version=schedule.version,
            enrolled=tuple(sorted(schedule.enrolled)),
            waitlisted=tuple(sorted(schedule.waitlisted)),
            credits=schedule.credits,
        )

    async def section_history(self, section_id: str) -> list[HistoryEntry]:
        """Every event of the section's stream, oldest first (`NotFound` if none)."""
        return await self._history(Section.stream_id(section_id), "section", section_id)

    async def schedule_history(self, term_id: str, student_id: str) -> list[HistoryEntry]:
        """Every event of the student's schedule in the term, oldest first."""
        stream = Schedule.stream_id(term_id, student_id)
        return await self._history(stream, "schedule", f"{term_id}:{student_id}")

    async def _load(self, kind: type[A], stream: str, name: str, at: datetime | None) -> A:
        try:
            return await Repository(kind, self._store).get(stream, as_of=at)
        except AggregateNotFoundError as error:
            raise NotFound(name, stream.partition(":")[2]) from error

    async def _history(self, stream: str, kind: str, key: str) -> list[HistoryEntry]:
        events = await self._store.read_stream(stream)
        if not events:
            raise NotFound(kind, key)
        return [_entry(recorded) for recorded in events]


def _entry(recorded: RecordedEvent) -> HistoryEntry:
    metadata = recorded.metadata
    return HistoryEntry(
        version=recorded.version,
        recorded_at=recorded.recorded_at,
        event_type=recorded.event_type,
        data=recorded.event.model_dump(mode="json"),
        actor=metadata.actor,
        correlation_id=metadata.correlation_id,
        causation_id=metadata.causation_id,
    )


def _position(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not cursor.isdigit():
        raise ValueError(f"not a cursor of this query: {cursor!r}")
    return int(cursor)


def _with_limit(search: SectionSearch, limit: int) -> SectionSearch:
    return replace(search, limit=limit)
