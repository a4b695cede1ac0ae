"""`UnitOfWork` on every store: atomic multi-aggregate commits, life cycle, own writes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select

from eventcore import (
    Aggregate,
    AggregateError,
    DomainEvent,
    EventStore,
    InMemoryEventStore,
    NewEvent,
    Repository,
    SqlAlchemyEventStore,
    UnitOfWork,
    UnitOfWorkError,
    WrongExpectedVersionError,
    apply,
)

pytestmark = pytest.mark.anyio


class Opened(DomainEvent, type_name="test_unit_of_work.Opened"):
    """A section opened."""

    capacity: int


class Enrolled(DomainEvent, type_name="test_unit_of_work.Enrolled"):
    """A student enrolled."""

    student: str


class Section(Aggregate, aggregate_type="test_unit_of_work.Section"):
    """A course section."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.capacity = 0
        self.students: list[str] = []

    @classmethod
    def open(cls, id: str, capacity: int = 10) -> Section:
        """Open a section."""
        section = cls(id)
        section.record(Opened(capacity=capacity))
        return section

    def enroll(self, student: str) -> None:
        """Enroll `student`."""
        self.record(Enrolled(student=student))

    @apply
    def _opened(self, event: Opened) -> None:
        self.capacity = event.capacity

    @apply
    def _enrolled(self, event: Enrolled) -> None:
        self.students.append(event.student)


async def _open(store: EventStore, *ids: str) -> None:
    repo = Repository(Section, store)
    for section_id in ids:
        await repo.add(Section.open(section_id))


async def _load_stale(store: EventStore, *ids: str) -> list[Section]:
    """Load sections and enroll "ada" in each; then a rival enrolls in the last one first.

    (Loaded before the unit of work opens: on SQLite a unit of work is the single
    writer for its whole life, so no rival can write while it is open.)
    """
    repo = Repository(Section, store)
    sections = [await repo.get(section_id) for section_id in ids]
    for section in sections:
        section.enroll("ada")
    rival = await repo.get(ids[-1])
    rival.enroll("rival")
    await repo.save(rival)
    return sections


# -- commits ----------------------------------------------------------------------------


async def test_commit_appends_every_aggregate(any_store: EventStore) -> None:
    await _open(any_store, "math")
    async with UnitOfWork(any_store) as uow:
        sections = uow.repository(Section)
        math = await sections.get("math")
        math.enroll("ada")
        physics = Section.open("physics")
        physics.enroll("bob")
        assert await sections.add(physics) is None  # only marked; commit appends
        assert await any_store.stream_version("physics") == 0
        expected = [("math", e) for e in math.pending_events]
        expected += [("physics", e) for e in physics.pending_events]
        results = await uow.commit()
    assert {(r.stream_id, r.next_expected_version) for r in results} == {
        ("math", 2),
        ("physics", 2),
    }
    assert uow.committed_events == expected
    assert (math.pending_events, physics.pending_events) == ((), ())
    assert (math.committed_version, physics.committed_version) == (2, 2)
    repo = Repository(Section, any_store)
    assert (await repo.get("math")).students == ["ada"]
    assert (await repo.get("physics")).students == ["bob"]


async def test_save_in_a_unit_of_work_tracks_an_aggregate(any_store: EventStore) -> None:
    await _open(any_store, "math")
    loaded = await Repository(Section, any_store).get("math")
    loaded.enroll("ada")
    async with UnitOfWork(any_store) as uow:
        assert await uow.repository(Section).save(loaded) is None
        await uow.commit()
    assert await any_store.stream_version("math") == 2


async def test_commit_with_nothing_to_append(any_store: EventStore) -> None:
    await _open(any_store, "math")
    async with UnitOfWork(any_store) as uow:
        await uow.repository(Section).get("math")
        assert await uow.commit() == []
    assert uow.committed_events == []
    assert await any_store.stream_version("math") == 1


async def test_a_conflict_in_one_aggregate_commits_nothing(any_store: EventStore) -> None:
    await _open(any_store, "math", "physics")
    math, physics = await _load_stale(any_store, "math", "physics")
    async with UnitOfWork(any_store) as uow:
        sections = uow.repository(Section)
        await sections.save(math)
        await sections.save(physics)
        chemistry = Section.open("chemistry")
        await sections.add(chemistry)
        with pytest.raises(WrongExpectedVersionError):
            await uow.commit()
    assert uow.committed_events == []
    assert await any_store.stream_version("math") == 1
    assert await any_store.stream_version("physics") == 2  # only the rival's event
    assert await any_store.stream_version("chemistry") == 0
    assert math.pending_events  # still pending: a retry can reload and redo the work


async def test_leaving_without_commit_writes_nothing(any_store: EventStore) -> None:
    await _open(any_store, "math")
    async with UnitOfWork(any_store) as uow:
        sections = uow.repository(Section)
        (await sections.get("math")).enroll("ada")
        await sections.add(Section.open("physics"))
    assert await any_store.stream_version("math") == 1
    assert await any_store.stream_version("physics") == 0
    assert uow.committed_events == []


async def test_an_error_in_the_block_writes_nothing(any_store: EventStore) -> None:
    async def failing_handler() -> None:
        async with UnitOfWork(any_store) as uow:
            await uow.repository(Section).add(Section.open("math"))
            raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError, match="handler failed"):
        await failing_handler()
    assert await any_store.stream_version("math") == 0


async def test_explicit_rollback(any_store: EventStore) -> None:
    async with UnitOfWork(any_store) as uow:
        await uow.repository(Section).add(Section.open("math"))
        await uow.rollback()
        with pytest.raises(UnitOfWorkError):
            await uow.commit()
    assert await any_store.stream_version("math") == 0


# -- life cycle -------------------------------------------------------------------------


async def test_commit_twice(any_store: EventStore) -> None:
    async with UnitOfWork(any_store) as uow:
        await uow.repository(Section).add(Section.open("math"))
        await uow.commit()
        with pytest.raises(UnitOfWorkError):
            await uow.commit()
    assert await any_store.stream_version("math") == 1


async def test_use_after_commit_or_outside_the_block(any_store: EventStore) -> None:
    await _open(any_store, "math")
    uow = UnitOfWork(any_store)
    with pytest.raises(UnitOfWorkError):
        await uow.repository(Section).get("math")
    async with uow:
        await uow.commit()
        with pytest.raises(UnitOfWorkError):
            await uow.repository(Section).get("math")
    with pytest.raises(UnitOfWorkError, match="only once"):
        async with uow:
            pass


async def test_two_instances_of_one_aggregate(any_store: EventStore) -> None:
    await _open(any_store, "math")
    async with UnitOfWork(any_store) as uow:
        sections = uow.repository(Section)
        first = await sections.get("math")
        assert await sections.save(first) is None  # the same instance again is fine
        with pytest.raises(AggregateError, match="two different instances"):
            await sections.get("math")
        with pytest.raises(AggregateError, match="two different instances"):
            await sections.add(Section.open("math"))


async def test_update_is_refused_in_a_unit_of_work(any_store: EventStore) -> None:
    await _open(any_store, "math")
    async with UnitOfWork(any_store) as uow:
        with pytest.raises(AggregateError, match="not in a unit of work"):
            await uow.repository(Section).update("math", lambda s: s.enroll("x"))


async def test_memory_store_has_no_connection() -> None:
    async with UnitOfWork(InMemoryEventStore()) as uow:
        with pytest.raises(UnitOfWorkError, match="no SQLAlchemy connection"):
            _ = uow.connection


async def test_retrying_a_committed_unit_of_work_is_a_no_op(
    any_store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    section = Section.open("math")
    section.enroll("ada")
    async with UnitOfWork(any_store) as uow:
        await uow.repository(Section).add(section)
        # The commit lands, but the caller never hears of it (a lost reply):
        with monkeypatch.context() as patch:
            patch.setattr(section, "mark_saved", lambda: None)
            await uow.commit()
    assert section.committed_version == 0
    async with UnitOfWork(any_store) as retry:
        await retry.repository(Section).add(section)
        (result,) = await retry.commit()
    assert result.already_stored
    assert result.next_expected_version == 2
    assert [r.event for r in await any_store.read_stream("math")] == [
        Opened(capacity=10),
        Enrolled(student="ada"),
    ]


# -- your own writes on the transaction's connection (SQL stores) -----------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_store(request: pytest.FixtureRequest) -> SqlAlchemyEventStore:
    """The SQL stores, each with a `roster` table of the application's own."""
    fixture = {"sqlite": "sqlite_store", "postgres": "postgres_event_store"}[request.param]
    store: SqlAlchemyEventStore = request.getfixturevalue(fixture)
    return store


@pytest.fixture
async def roster(sql_store: SqlAlchemyEventStore) -> AsyncIterator[Table]:
    """A user table next to the event tables (its own `MetaData`), dropped afterwards."""
    table = Table(
        "test_uow_roster",
        MetaData(),
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("section", String(50), nullable=False),
        Column("student", String(50), nullable=False),
        schema=sql_store.tables.schema,
    )
    async with sql_store.engine.begin() as conn:
        await conn.run_sync(table.create)
    yield table
    async with sql_store.engine.begin() as conn:
        await conn.run_sync(table.drop)


async def _rows(store: SqlAlchemyEventStore, table: Table) -> list[tuple[str, str]]:
    async with store.engine.connect() as conn:
        result = await conn.execute(select(table.c.section, table.c.student).order_by(table.c.id))
        return [(row[0], row[1]) for row in result]


async def test_own_writes_commit_with_the_events(
    sql_store: SqlAlchemyEventStore, roster: Table
) -> None:
    await _open(sql_store, "math")
    async with UnitOfWork(sql_store) as uow:
        math = await uow.repository(Section).get("math")
        math.enroll("ada")
        await uow.connection.execute(insert(roster).values(section="math", student="ada"))
        await uow.commit()
    assert await _rows(sql_store, roster) == [("math", "ada")]
    assert (await Repository(Section, sql_store).get("math")).students == ["ada"]


async def test_own_writes_without_events_commit(
    sql_store: SqlAlchemyEventStore, roster: Table
) -> None:
    async with UnitOfWork(sql_store) as uow:
        await uow.connection.execute(insert(roster).values(section="math", student="ada"))
        assert await uow.commit() == []
    assert await _rows(sql_store, roster) == [("math", "ada")]


async def test_own_writes_roll_back_when_the_append_conflicts(
    sql_store: SqlAlchemyEventStore, roster: Table
) -> None:
    await _open(sql_store, "math", "physics")
    math, physics = await _load_stale(sql_store, "math", "physics")
    async with UnitOfWork(sql_store) as uow:
        sections = uow.repository(Section)
        await sections.save(math)
        await sections.save(physics)
        await uow.connection.execute(insert(roster).values(section="math", student="ada"))
        with pytest.raises(WrongExpectedVersionError):
            await uow.commit()
    assert await _rows(sql_store, roster) == []
    assert await sql_store.stream_version("math") == 1
    assert await sql_store.stream_version("physics") == 2


async def test_own_writes_roll_back_without_commit(
    sql_store: SqlAlchemyEventStore, roster: Table
) -> None:
    async with UnitOfWork(sql_store) as uow:
        await uow.repository(Section).add(Section.open("math"))
        await uow.connection.execute(insert(roster).values(section="math", student="ada"))
    assert await _rows(sql_store, roster) == []
    assert await sql_store.stream_version("math") == 0


async def test_idempotent_retry_discards_the_duplicate_own_writes(
    sql_store: SqlAlchemyEventStore, roster: Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _open(sql_store, "math")
    math = await Repository(Section, sql_store).get("math")
    math.enroll("ada")

    async def attempt() -> bool:
        async with UnitOfWork(sql_store) as uow:
            await uow.repository(Section).save(math)
            await uow.connection.execute(insert(roster).values(section="math", student="ada"))
            (result,) = await uow.commit()
        return result.already_stored

    with monkeypatch.context() as patch:
        patch.setattr(math, "mark_saved", lambda: None)  # the first reply is lost
        assert await attempt() is False
    assert math.pending_events  # so the caller retries the whole unit of work
    assert await attempt() is True
    assert await _rows(sql_store, roster) == [("math", "ada")]
    assert (await Repository(Section, sql_store).get("math")).students == ["ada"]
    assert math.pending_events == ()
    async with sql_store.engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(sql_store.tables.events))
    assert count == 2


async def test_sqlite_refuses_a_second_writer_in_the_same_task(
    sqlite_store: SqlAlchemyEventStore,
) -> None:
    async with UnitOfWork(sqlite_store):
        with pytest.raises(UnitOfWorkError, match="write transaction"):
            await sqlite_store.append("other", [NewEvent.of(_SqliteNoted(text="x"))])
    await sqlite_store.append("other", [NewEvent.of(_SqliteNoted(text="x"))])
    assert await sqlite_store.stream_version("other") == 1


class _SqliteNoted(DomainEvent, type_name="test_unit_of_work.SqliteNoted"):
    text: str
