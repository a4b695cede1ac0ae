"""The service the FastAPI tests drive: course sections, a roster read model, controls.

`build_app(store)` makes a fresh app each time (nothing live at import). `Controls`
lets a test hold the roster projection back (a lagging read model), or hold a request
between its load and its return (so another request commits in between).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import anyio
from pydantic import BaseModel, Field

from eventcore import (
    Aggregate,
    DomainEvent,
    EventStore,
    ProjectionContext,
    ProjectionWorker,
    Projector,
    Repository,
    apply,
    projects,
)
from eventcore.fastapi import (
    ConditionalDep,
    Eventcore,
    EventStreamResponse,
    Readiness,
    RequestUnitOfWork,
    StoreDep,
    UnitOfWorkDep,
    consistent_read,
    event_stream,
    unit_of_work,
)
from fastapi import APIRouter, FastAPI, Request

__all__ = ["Controls", "Section", "SectionFull", "build_app"]


class SectionOpened(DomainEvent, type_name="tests.fastapi.SectionOpened"):
    capacity: int = Field(ge=1)


class StudentRegistered(DomainEvent, type_name="tests.fastapi.StudentRegistered"):
    student_id: str = Field(min_length=1, max_length=20)


class CapacityChanged(DomainEvent, type_name="tests.fastapi.CapacityChanged"):
    capacity: int = Field(ge=1)


class SectionFull(Exception):
    """A domain error: the section has no seat left."""


class Section(Aggregate, aggregate_type="tests.fastapi.Section"):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.capacity = 0
        self.students: list[str] = []

    @classmethod
    def open(cls, section_id: str, capacity: int) -> Section:
        section = cls(section_id)
        section.record(SectionOpened(capacity=capacity))
        return section

    def register(self, student_id: str) -> None:
        if len(self.students) >= self.capacity:
            raise SectionFull(f"section {self.id} is full ({self.capacity} seats)")
        self.record(StudentRegistered(student_id=student_id))

    def change_capacity(self, capacity: int) -> None:
        self.record(CapacityChanged(capacity=capacity))

    @apply
    def _opened(self, event: SectionOpened) -> None:
        self.capacity = event.capacity

    @apply
    def _registered(self, event: StudentRegistered) -> None:
        self.students.append(event.student_id)

    @apply
    def _changed(self, event: CapacityChanged) -> None:
        self.capacity = event.capacity


@dataclass
class Controls:
    """Switches a test flips: a paused projection, requests held mid-way."""

    projection_open: anyio.Event = field(default_factory=anyio.Event)
    held: dict[str, anyio.Event] = field(default_factory=dict)
    reached: dict[str, anyio.Event] = field(default_factory=dict)
    roster: dict[str, list[str]] = field(default_factory=dict)

    def hold(self, name: str) -> None:
        """Make requests that pass `?hold=name` wait until `release(name)`."""
        self.held[name] = anyio.Event()
        self.reached[name] = anyio.Event()

    def release(self, name: str) -> None:
        self.held[name].set()


class Roster(Projector, name="tests.fastapi.roster"):
    """Who is registered in each section (in memory: the tests' read model)."""

    def __init__(self, controls: Controls) -> None:
        self.controls = controls

    @projects
    async def _registered(self, event: StudentRegistered, context: ProjectionContext) -> None:
        await self.controls.projection_open.wait()
        students = self.controls.roster.setdefault(context.recorded.stream_id, [])
        students.append(event.student_id)


class FailingAudit(Projector, name="tests.fastapi.audit"):
    """An inline projection that fails at commit for student "boom"."""

    @projects
    async def _registered(self, event: StudentRegistered, context: ProjectionContext) -> None:
        if event.student_id == "boom":
            raise RuntimeError("audit table rejected the row: SELECT secret FROM internals")


class OpenSection(BaseModel):
    section_id: str
    capacity: int


class Register(BaseModel):
    student_id: str


class SectionView(BaseModel):
    section_id: str
    capacity: int
    students: list[str]
    version: int


def _view(section: Section) -> SectionView:
    return SectionView(
        section_id=section.id,
        capacity=section.capacity,
        students=section.students,
        version=section.version,
    )


StrictUnitOfWork = Annotated[RequestUnitOfWork, unit_of_work(if_match="required")]
IdempotentUnitOfWork = Annotated[RequestUnitOfWork, unit_of_work(idempotency="required")]


def _router(controls: Controls) -> APIRouter:
    router = APIRouter()

    async def pause(hold: str | None) -> None:
        if hold is not None:
            controls.reached[hold].set()
            await controls.held[hold].wait()

    @router.post("/sections", status_code=201)
    async def open_section(body: OpenSection, uow: UnitOfWorkDep) -> SectionView:
        section = Section.open(body.section_id, body.capacity)
        await uow.add(section)
        return _view(section)

    @router.post("/sections/{section_id}/registrations", status_code=201)
    async def register(
        section_id: str, body: Register, uow: UnitOfWorkDep, hold: str | None = None
    ) -> SectionView:
        section = await uow.get(Section, section_id)
        section.register(body.student_id)
        await pause(hold)
        return _view(section)

    @router.post("/sections/{section_id}/waitlist", status_code=201)
    async def waitlist(
        section_id: str, body: Register, uow: IdempotentUnitOfWork, hold: str | None = None
    ) -> SectionView:
        section = await uow.get(Section, section_id)
        section.register(body.student_id)
        await pause(hold)
        return _view(section)

    @router.put("/sections/{section_id}/capacity")
    async def change_capacity(
        section_id: str, body: OpenSection, uow: StrictUnitOfWork, hold: str | None = None
    ) -> SectionView:
        section = await uow.get(Section, section_id)
        section.change_capacity(body.capacity)
        await pause(hold)
        return _view(section)

    @router.get("/sections/{section_id}")
    async def read_section(
        section_id: str, store: StoreDep, conditional: ConditionalDep
    ) -> SectionView:
        section = await Repository(Section, store).get(section_id)
        conditional.etag(section.version)
        return _view(section)

    @router.get(
        "/sections/{section_id}/roster",
        dependencies=[consistent_read("tests.fastapi.roster", timeout=1.0)],
    )
    async def roster(section_id: str) -> list[str]:
        return controls.roster.get(section_id, [])

    @router.get("/events")
    async def events(request: Request) -> EventStreamResponse:
        return await event_stream(request, keep_alive=0.2, retry=0.1)

    @router.get("/roster/changes")
    async def roster_changes(request: Request) -> EventStreamResponse:
        return await event_stream(request, projection="tests.fastapi.roster", keep_alive=0.2)

    @router.post("/crash")
    async def crash() -> None:
        raise RuntimeError("password=hunter2 at db.internal:5432")

    @router.post("/sections/{section_id}/bad-event")
    async def bad_event(section_id: str, uow: UnitOfWorkDep) -> None:
        section = await uow.get(Section, section_id)
        section.record(CapacityChanged(capacity=0))

    @router.post("/test/hold/{name}")
    async def hold(name: str) -> None:
        controls.hold(name)

    @router.post("/test/release/{name}")
    async def release(name: str) -> None:
        await controls.reached[name].wait()
        controls.release(name)

    @router.post("/test/projection/{state}")
    async def projection(state: str) -> None:
        if state == "open":
            controls.projection_open.set()
        else:
            controls.projection_open = anyio.Event()

    return router


def build_app(
    store: EventStore,
    *,
    controls: Controls | None = None,
    projection_open: bool = True,
    readiness: Readiness | None = None,
    grace_period: float = 5.0,
) -> tuple[FastAPI, Eventcore, Controls]:
    """A fresh app on `store`, its `Eventcore` and its controls."""
    controls = controls or Controls()
    if projection_open:
        controls.projection_open.set()
    worker = ProjectionWorker(store, [Roster(controls)], max_wait=0.05)
    service = Eventcore(
        store,
        projectors=[FailingAudit()],
        workers=[worker],
        readiness=readiness,
        grace_period=grace_period,
        close_store=False,
    )
    app = FastAPI(lifespan=service.lifespan)
    service.install(app)
    service.register_error(SectionFull, 409, title="Section full")
    app.include_router(_router(controls))
    return app, service, controls
