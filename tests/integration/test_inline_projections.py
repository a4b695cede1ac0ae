"""Inline projections: `UnitOfWork(store, projectors=[...])` projects inside the commit."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select

from eventcore import (
    Aggregate,
    DomainEvent,
    EventStore,
    ProjectionContext,
    Projector,
    RecordedEvent,
    Repository,
    SqlAlchemyEventStore,
    UnitOfWork,
    WrongExpectedVersionError,
    apply,
    projects,
)

pytestmark = pytest.mark.anyio


class SectionOpened(DomainEvent, type_name="test_inline_projections.SectionOpened"):
    """A section opened."""

    capacity: int


class StudentRegistered(DomainEvent, type_name="test_inline_projections.StudentRegistered"):
    """A student registered."""

    student: str


class Section(Aggregate, aggregate_type="test_inline_projections.Section"):
    """A course section."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.students: list[str] = []

    @classmethod
    def open(cls, id: str, *students: str) -> Section:
        """Open a section, with students registered right away."""
        section = cls(id)
        section.record(SectionOpened(capacity=30))
        section.register(*students)
        return section

    def register(self, *students: str) -> None:
        """Register students."""
        for student in students:
            self.record(StudentRegistered(student=student))

    @apply
    def _opened(self, event: SectionOpened) -> None:
        pass

    @apply
    def _registered(self, event: StudentRegistered) -> None:
        self.students.append(event.student)


class Roster(Projector, name="test_inline_projections.roster"):
    """The roster table; fails (after writing its row) on a student named "poison"."""

    def __init__(self, roster: Table) -> None:
        self.roster = roster
        self.projected: list[RecordedEvent] = []

    @projects
    async def _registered(self, event: StudentRegistered, context: ProjectionContext) -> None:
        await context.connection.execute(
            insert(self.roster).values(section=context.recorded.stream_id, student=event.student)
        )
        self.projected.append(context.recorded)
        if event.student == "poison":
            raise RuntimeError("the roster refuses poison")


class Names(Projector, name="test_inline_projections.names"):
    """Registered students, kept in memory (works on every store)."""

    def __init__(self) -> None:
        self.students: list[str] = []

    @projects
    async def _registered(self, event: StudentRegistered, context: ProjectionContext) -> None:
        self.students.append(event.student)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_store(request: pytest.FixtureRequest) -> SqlAlchemyEventStore:
    """The SQL stores: an inline read model shares their transaction."""
    fixture = {"sqlite": "sqlite_store", "postgres": "postgres_event_store"}[request.param]
    store: SqlAlchemyEventStore = request.getfixturevalue(fixture)
    return store


@pytest.fixture
async def roster(sql_store: SqlAlchemyEventStore) -> Table:
    """The read model's table, in the store's database and schema."""
    table = Table(
        "test_inline_roster",
        MetaData(schema=sql_store.tables.schema),
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("section", String(50), nullable=False),
        Column("student", String(50), nullable=False),
    )
    async with sql_store.engine.begin() as conn:
        await conn.run_sync(table.create)
    return table


async def _rows(store: SqlAlchemyEventStore, roster: Table) -> list[tuple[str, str]]:
    async with store.engine.connect() as conn:
        result = await conn.execute(select(roster.c.section, roster.c.student).order_by("id"))
        return [(section, student) for section, student in result]


def _students(records: list[RecordedEvent]) -> list[str]:
    return [r.event.student for r in records if isinstance(r.event, StudentRegistered)]


async def _add(store: EventStore, projectors: list[Projector], section: Section) -> None:
    async with UnitOfWork(store, projectors=projectors) as uow:
        await uow.repository(Section).add(section)
        await uow.commit()


# -- on the SQL stores: one transaction --------------------------------------------------


async def test_the_read_model_commits_with_the_events(
    sql_store: SqlAlchemyEventStore, roster: Table
) -> None:
    projector = Roster(roster)
    await _add(sql_store, [projector], Section.open("cs101", "ada", "grace"))
    assert await _rows(sql_store, roster) == [("cs101", "ada"), ("cs101", "grace")]
    stored = await sql_store.read_stream("cs101")
    assert [(r.event_id, r.version, r.global_position) for r in projector.projected] == [
        (r.event_id, r.version, r.global_position) for r in stored[1:]
    ]
    assert [r.stream_type for r in projector.projected] == [Section.aggregate_type] * 2


async def test_a_conflicting_commit_leaves_the_read_model_untouched(
    sql_store: SqlAlchemyEventStore, roster: Table
) -> None:
    projector = Roster(roster)
    await _add(sql_store, [projector], Section.open("cs101", "ada"))
    stale = await Repository(Section, sql_store).get("cs101")
    stale.register("grace")
    async with UnitOfWork(sql_store, projectors=[projector]) as rival:
        (await rival.repository(Section).get("cs101")).register("alan")
        await rival.commit()
    async with UnitOfWork(sql_store, projectors=[projector]) as uow:
        await uow.repository(Section).save(stale)
        with pytest.raises(WrongExpectedVersionError):
            await uow.commit()
    assert await _rows(sql_store, roster) == [("cs101", "ada"), ("cs101", "alan")]
    assert "grace" not in _students(projector.projected)
    assert (await Repository(Section, sql_store).get("cs101")).students == ["ada", "alan"]


async def test_a_failing_projector_rolls_the_events_back_too(
    sql_store: SqlAlchemyEventStore, roster: Table
) -> None:
    projector = Roster(roster)
    await _add(sql_store, [projector], Section.open("cs101", "ada"))
    section = await Repository(Section, sql_store).get("cs101")
    section.register("grace", "poison")
    async with UnitOfWork(sql_store, projectors=[projector]) as uow:
        await uow.repository(Section).save(section)
        with pytest.raises(RuntimeError, match="refuses poison"):
            await uow.commit()
    # grace's row was written before poison failed: it is gone with everything else.
    assert _students(projector.projected) == ["ada", "grace", "poison"]
    assert await _rows(sql_store, roster) == [("cs101", "ada")]
    assert await sql_store.stream_version("cs101") == 2
    assert len(await sql_store.read_stream("cs101")) == 2
    assert section.pending_events  # not saved: the caller may fix and retry


async def test_an_idempotent_retry_does_not_project_twice(
    sql_store: SqlAlchemyEventStore, roster: Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    projector = Roster(roster)
    section = Section.open("cs101", "ada", "grace")

    async def attempt() -> bool:
        async with UnitOfWork(sql_store, projectors=[projector]) as uow:
            await uow.repository(Section).add(section)
            (result,) = await uow.commit()
        return result.already_stored

    with monkeypatch.context() as patch:
        patch.setattr(section, "mark_saved", lambda: None)  # the reply is lost
        assert await attempt() is False
    assert await attempt() is True
    assert await _rows(sql_store, roster) == [("cs101", "ada"), ("cs101", "grace")]
    assert len(projector.projected) == 2
    assert section.pending_events == ()


async def test_own_writes_and_inline_projections_share_the_transaction(
    sql_store: SqlAlchemyEventStore, roster: Table
) -> None:
    projector = Roster(roster)
    async with UnitOfWork(sql_store, projectors=[projector]) as uow:
        await uow.repository(Section).add(Section.open("cs101", "ada"))
        await uow.connection.execute(insert(roster).values(section="cs101", student="by hand"))
        await uow.commit()
    assert await _rows(sql_store, roster) == [("cs101", "by hand"), ("cs101", "ada")]
    section = await Repository(Section, sql_store).get("cs101")
    section.register("poison")
    async with UnitOfWork(sql_store, projectors=[projector]) as uow:
        await uow.repository(Section).save(section)
        await uow.connection.execute(insert(roster).values(section="cs101", student="lost"))
        with pytest.raises(RuntimeError):
            await uow.commit()
    assert await _rows(sql_store, roster) == [("cs101", "by hand"), ("cs101", "ada")]


# -- on every store ---------------------------------------------------------------------


async def test_inline_projections_run_at_commit_on_every_store(any_store: EventStore) -> None:
    names = Names()
    async with UnitOfWork(any_store, projectors=[names]) as uow:
        await uow.repository(Section).add(Section.open("cs101", "ada"))
        assert names.students == []  # nothing before the commit
        await uow.commit()
    assert names.students == ["ada"]
    async with UnitOfWork(any_store, projectors=[names]) as uow:
        await uow.repository(Section).get("cs101")
        assert await uow.commit() == []  # nothing to append: nothing to project
    async with UnitOfWork(any_store, projectors=[names]) as uow:
        await uow.repository(Section).add(Section.open("cs102", "grace"))
    assert names.students == ["ada"]  # left without commit: rolled back, not projected


async def test_an_idempotent_retry_does_not_project_twice_on_every_store(
    any_store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = Names()
    section = Section.open("cs101", "ada")
    with monkeypatch.context() as patch:
        patch.setattr(section, "mark_saved", lambda: None)
        await _add(any_store, [names], section)
    await _add(any_store, [names], section)
    assert names.students == ["ada"]
    assert await any_store.stream_version("cs101") == 2
