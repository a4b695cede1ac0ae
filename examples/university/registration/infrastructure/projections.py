"""The read models, as eventcore projections (run by a `ProjectionWorker`).

- `SectionsProjector`: the catalogue and each section's seats and waitlist length (for
  availability and search), from the courses' and sections' streams.
- `SchedulesProjector`: each student's sections per term, from their schedule stream.
- `AuditProjector`: one row per request and outcome (refusals and waitlist skips
  included), with who, when, why and through which request (correlation id).

Each batch of events is applied in one transaction with the projector's checkpoint,
so each event changes a read model exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import Table, delete, insert, update

from eventcore import ProjectionContext, Projector, projects
from university.registration.domain.events import (
    CapacityChanged,
    CourseCatalogued,
    RequestRefused,
    SeatReleased,
    SeatTaken,
    SectionAdded,
    SectionDropped,
    SectionOffered,
    SectionWaitlisted,
    StudentLeftWaitlist,
    StudentWaitlisted,
    WaitlistSkipped,
    WaitlistWithdrawn,
)
from university.registration.domain.reasons import Action
from university.registration.domain.values import Meeting
from university.registration.infrastructure.tables import RegistrationTables

__all__ = ["AuditProjector", "SchedulesProjector", "SectionsProjector", "meetings_json"]


def meetings_json(meetings: Sequence[Meeting]) -> str:
    """Meetings as stored in the read models (a JSON list)."""
    return json.dumps([m.model_dump(mode="json") for m in meetings])


class SectionsProjector(Projector, name="registration.sections"):
    """The catalogue and each section's seats (`registration_courses`, `_sections`)."""

    def __init__(self, tables: RegistrationTables) -> None:
        self._courses = tables.courses
        self._sections = tables.sections

    @projects
    async def _catalogued(self, event: CourseCatalogued, context: ProjectionContext) -> None:
        await context.insert(
            self._courses,
            {
                "course_id": event.course_id,
                "title": event.title,
                "department": event.department,
                "credits": event.credits,
                "level": event.level.value,
                "prerequisites": json.dumps(event.prerequisites),
            },
        )

    @projects
    async def _offered(self, event: SectionOffered, context: ProjectionContext) -> None:
        row = {
            "section_id": event.section_id,
            "term_id": event.term_id,
            "course_id": event.course_id,
            "meetings": meetings_json(event.meetings),
            "instructor": event.instructor,
            "capacity": event.capacity,
            "waitlist_capacity": event.waitlist_capacity,
            "enrolled": 0,
            "waitlisted": 0,
            "version": context.recorded.version,
        }
        await context.connection.execute(insert(self._sections), [row])

    @projects
    async def _seat_taken(self, event: SeatTaken, context: ProjectionContext) -> None:
        t = self._sections
        waiting = t.c.waitlisted - 1 if event.from_waitlist else t.c.waitlisted
        await self._change(event.section_id, context, enrolled=t.c.enrolled + 1, waitlisted=waiting)

    @projects
    async def _seat_released(self, event: SeatReleased, context: ProjectionContext) -> None:
        await self._change(event.section_id, context, enrolled=self._sections.c.enrolled - 1)

    @projects
    async def _waitlisted(self, event: StudentWaitlisted, context: ProjectionContext) -> None:
        await self._change(event.section_id, context, waitlisted=self._sections.c.waitlisted + 1)

    @projects
    async def _left(self, event: StudentLeftWaitlist, context: ProjectionContext) -> None:
        await self._change(event.section_id, context, waitlisted=self._sections.c.waitlisted - 1)

    @projects
    async def _capacity(self, event: CapacityChanged, context: ProjectionContext) -> None:
        await self._change(
            event.section_id,
            context,
            capacity=event.capacity,
            waitlist_capacity=event.waitlist_capacity,
        )

    async def _change(self, section_id: str, context: ProjectionContext, **values: object) -> None:
        t = self._sections
        statement = (
            update(t)
            .where(t.c.section_id == section_id)
            .values(version=context.recorded.version, **values)
        )
        await context.connection.execute(statement)


class SchedulesProjector(Projector, name="registration.schedules"):
    """Each student's sections per term (`registration_schedule_entries`)."""

    def __init__(self, tables: RegistrationTables) -> None:
        self._entries = tables.schedule_entries

    @projects
    async def _added(self, event: SectionAdded, context: ProjectionContext) -> None:
        await self._keep(event, "enrolled", context)

    @projects
    async def _waitlisted(self, event: SectionWaitlisted, context: ProjectionContext) -> None:
        await self._keep(event, "waitlisted", context)

    @projects
    async def _dropped(self, event: SectionDropped, context: ProjectionContext) -> None:
        await self._forget(event.term_id, event.student_id, event.section_id, context)

    @projects
    async def _withdrawn(self, event: WaitlistWithdrawn, context: ProjectionContext) -> None:
        await self._forget(event.term_id, event.student_id, event.section_id, context)

    @projects
    async def _skipped(self, event: WaitlistSkipped, context: ProjectionContext) -> None:
        await self._forget(event.term_id, event.student_id, event.section_id, context)

    async def _keep(
        self, event: SectionAdded | SectionWaitlisted, status: str, context: ProjectionContext
    ) -> None:
        await self._forget(event.term_id, event.student_id, event.section_id, context)
        row = {
            "term_id": event.term_id,
            "student_id": event.student_id,
            "section_id": event.section_id,
            "status": status,
            "course_id": event.course_id,
            "credits": event.credits,
            "meetings": meetings_json(event.meetings),
            "since": context.recorded.recorded_at,
        }
        await context.connection.execute(insert(self._entries), [row])

    async def _forget(
        self, term_id: str, student_id: str, section_id: str, context: ProjectionContext
    ) -> None:
        t = self._entries
        await context.connection.execute(
            delete(t).where(
                t.c.term_id == term_id, t.c.student_id == student_id, t.c.section_id == section_id
            )
        )


class AuditProjector(Projector, name="registration.audit"):
    """Every request and its outcome, refusals included (`registration_audit`)."""

    def __init__(self, tables: RegistrationTables) -> None:
        self._audit: Table = tables.audit

    @projects
    async def _added(self, event: SectionAdded, context: ProjectionContext) -> None:
        detail = {
            Action.REGISTER: "registered",
            Action.SWAP: "swapped in",
            Action.PROMOTE: "promoted from the waitlist",
        }.get(event.via, "added")
        await self._row(context, event, event.via, "enrolled", detail)

    @projects
    async def _waitlisted(self, event: SectionWaitlisted, context: ProjectionContext) -> None:
        detail = f"waitlisted at position {event.position}"
        await self._row(context, event, Action.REGISTER, "waitlisted", detail)

    @projects
    async def _dropped(self, event: SectionDropped, context: ProjectionContext) -> None:
        detail = "swapped out" if event.via is Action.SWAP else "dropped"
        await self._row(context, event, event.via, "dropped", detail)

    @projects
    async def _withdrawn(self, event: WaitlistWithdrawn, context: ProjectionContext) -> None:
        await self._row(context, event, Action.DROP, "withdrawn", "left the waitlist")

    @projects
    async def _skipped(self, event: WaitlistSkipped, context: ProjectionContext) -> None:
        reason = event.reason
        await self._row(context, event, Action.PROMOTE, "skipped", reason.message, reason.code)

    @projects
    async def _refused(self, event: RequestRefused, context: ProjectionContext) -> None:
        reason = event.reason
        await self._row(context, event, event.action, "refused", reason.message, reason.code,
                        other=event.other_section_id)  # fmt: skip

    async def _row(
        self,
        context: ProjectionContext,
        event: SectionAdded
        | SectionWaitlisted
        | SectionDropped
        | WaitlistWithdrawn
        | WaitlistSkipped
        | RequestRefused,
        action: Action,
        outcome: str,
        detail: str,
        reason_code: str | None = None,
        *,
        other: str | None = None,
    ) -> None:
        recorded = context.recorded
        metadata = recorded.metadata
        row = {
            "event_id": recorded.event_id,
            "position": recorded.global_position,
            "term_id": event.term_id,
            "student_id": event.student_id,
            "section_id": event.section_id,
            "other_section_id": other,
            "action": action.value,
            "outcome": outcome,
            "reason_code": reason_code,
            "detail": detail,
            "actor": metadata.actor,
            "correlation_id": metadata.correlation_id,
            "recorded_at": recorded.recorded_at,
        }
        await context.insert(self._audit, row)
