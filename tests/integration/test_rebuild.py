"""Blue/green rebuilds: a new version of a read model is built while the old one serves.

Version 1 of the roster writes `test_rebuild_roster_v1`; version 2 (same name) writes
`test_rebuild_roster_v2`, with a label column version 1 lacks. Rows have a surrogate
key, so an event applied twice would show as a duplicate row.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, delete, insert, select

from eventcore import (
    DomainEvent,
    EventStore,
    LogPosition,
    NewEvent,
    ProjectionContext,
    ProjectionError,
    ProjectionWorker,
    Projector,
    RecordedEvent,
    SqlAlchemyEventStore,
    active_version,
    projects,
    wait_for_projection,
)

pytestmark = pytest.mark.anyio

PATIENCE = 30.0
"""How long to wait for projections: on a shared PostgreSQL server, any open
transaction holds back every reader of the log (see `read_log`)."""
NAME = "test_rebuild.roster"


class Registered(DomainEvent, type_name="test_rebuild.Registered"):
    """A student registered for the section (the stream)."""

    student: str


class Dropped(DomainEvent, type_name="test_rebuild.Dropped"):
    """A student dropped the section."""

    student: str


@dataclass(frozen=True)
class Model:
    """One table per version of the roster, in the store's database (and schema)."""

    tables: dict[int, Table]

    @classmethod
    async def create(cls, store: SqlAlchemyEventStore) -> Model:
        metadata = MetaData(schema=store.tables.schema)
        v1 = Table(
            "test_rebuild_roster_v1",
            metadata,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("section", String(50), nullable=False),
            Column("student", String(50), nullable=False),
        )
        v2 = Table(
            "test_rebuild_roster_v2",
            metadata,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("section", String(50), nullable=False),
            Column("student", String(50), nullable=False),
            Column("label", String(120), nullable=False),
        )
        async with store.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        return cls({1: v1, 2: v2})

    async def rows(self, store: SqlAlchemyEventStore, version: int) -> list[tuple[Any, ...]]:
        """The rows of `version`'s table, without the surrogate key, sorted."""
        table = self.tables[version]
        async with store.engine.connect() as conn:
            rows = (await conn.execute(select(*list(table.columns)[1:]))).all()
        return sorted(tuple(row) for row in rows)


class Roster(Projector, name=NAME):
    """Version 1: who is in each section. Writes the table of its `version`."""

    def __init__(self, model: Model) -> None:
        self.table = model.tables[self.version]
        self.interrupt: Any = None
        """A callable run after writing each row (to cancel a rebuild mid-batch)."""

    def row(self, section: str, student: str) -> dict[str, str]:
        return {"section": section, "student": student}

    @projects
    async def _registered(self, event: Registered, context: ProjectionContext) -> None:
        row = self.row(context.recorded.stream_id, event.student)
        await context.connection.execute(insert(self.table).values(row))
        if self.interrupt is not None:
            self.interrupt(context.recorded)

    @projects
    async def _dropped(self, event: Dropped, context: ProjectionContext) -> None:
        t = self.table
        section = context.recorded.stream_id
        await context.connection.execute(
            delete(t).where(t.c.section == section, t.c.student == event.student)
        )


class RosterV2(Roster, name=NAME, version=2):
    """Version 2: the same, with a label."""

    def row(self, section: str, student: str) -> dict[str, str]:
        return {**super().row(section, student), "label": f"{student} in {section}"}


def serial_replay(events: Sequence[RecordedEvent], version: int) -> list[tuple[Any, ...]]:
    """The rows `version` must hold after each event was applied once, in order."""
    rows: Counter[tuple[str, ...]] = Counter()
    for recorded in events:
        section, event = recorded.stream_id, recorded.event
        if isinstance(event, Registered):
            label = (f"{event.student} in {section}",) if version == 2 else ()
            rows[(section, event.student, *label)] += 1
        elif isinstance(event, Dropped):
            for row in [r for r in rows if r[:2] == (section, event.student)]:
                del rows[row]
    return sorted(rows.elements())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_store(request: pytest.FixtureRequest) -> SqlAlchemyEventStore:
    """The SQL stores (a read model needs a database)."""
    fixture = {"sqlite": "sqlite_store", "postgres": "postgres_event_store"}[request.param]
    store: SqlAlchemyEventStore = request.getfixturevalue(fixture)
    return store


@pytest.fixture
async def model(sql_store: SqlAlchemyEventStore) -> Model:
    """The empty tables of both versions."""
    return await Model.create(sql_store)


async def seed(store: EventStore, count: int) -> int:
    """`count` events in four sections, some of them drops; return the last position."""
    position = 0
    for n in range(count):
        section = f"s{n % 4}"
        event: DomainEvent = (
            Dropped(student=f"p{n - 8}") if n % 5 == 4 else Registered(student=f"p{n}")
        )
        position = (await store.append(section, [NewEvent.of(event)])).global_positions[-1]
    return position


async def log(store: EventStore, up_to: LogPosition | None = None) -> list[RecordedEvent]:
    """The whole readable log (up to `up_to`), in commit order."""
    events = await store.read_log(limit=100_000)
    return [e for e in events if up_to is None or e.log_position <= up_to]


async def keep_writing(store: EventStore, stop: anyio.Event, stopped: anyio.Event) -> None:
    """A concurrent writer: registrations (and a drop now and then) until `stop`."""
    for n in itertools.count():
        if stop.is_set():
            break
        event = Dropped(student=f"w{n - 3}") if n % 4 == 3 else Registered(student=f"w{n}")
        await store.append(f"w{n % 3}", [NewEvent.of(event)])
        await anyio.sleep(0.002)
    stopped.set()


def assert_progress(reports: list[tuple[int, int]], total: int) -> None:
    """The reports grow, all against `total`, up to it."""
    assert reports, "no progress reported"
    assert {t for _, t in reports} == {total}
    dones = [d for d, _ in reports]
    assert dones == sorted(dones)
    assert reports[-1] == (total, total)


# -- versions and keys -------------------------------------------------------------------


def test_versions_have_keys_of_their_own() -> None:
    assert (Roster.version, Roster.key) == (1, NAME)
    assert (RosterV2.name, RosterV2.version, RosterV2.key) == (NAME, 2, f"{NAME}@v2")
    with pytest.raises(ProjectionError, match="version must be an int >= 1"):

        class _Zero(Projector, version=0):
            pass

    with pytest.raises(ProjectionError, match="cannot contain '@'"):

        class _At(Projector, name="roster@v3"):
            pass


async def test_a_worker_runs_both_versions_but_not_one_twice(
    sql_store: SqlAlchemyEventStore, model: Model
) -> None:
    await seed(sql_store, 6)
    with anyio.fail_after(PATIENCE):  # on PostgreSQL, an open transaction may hold it back
        while True:
            if len(await sql_store.read_log()) == 6:
                break
            await anyio.sleep(0.01)
    worker = ProjectionWorker(sql_store, [Roster(model), RosterV2(model)])
    assert await worker.catch_up() == 12
    assert await model.rows(sql_store, 1) == serial_replay(await log(sql_store), 1)
    assert await model.rows(sql_store, 2) == serial_replay(await log(sql_store), 2)
    assert set(await sql_store.load_checkpoints()) == {NAME, f"{NAME}@v2"}
    assert [s.name for s in await worker.status()] == [NAME, f"{NAME}@v2"]
    with pytest.raises(ProjectionError, match="must be unique"):
        ProjectionWorker(sql_store, [RosterV2(model), RosterV2(model)])


# -- the active version ------------------------------------------------------------------


async def test_the_active_version_is_1_until_switched(any_store: EventStore) -> None:
    assert await any_store.active_projection_versions() == {}
    assert await active_version(any_store, NAME) == 1
    await any_store.activate_projection(NAME, 2)
    await any_store.activate_projection("test_rebuild.other", 3)
    assert await any_store.active_projection_versions() == {NAME: 2, "test_rebuild.other": 3}
    assert await active_version(any_store, RosterV2) == 2
    await any_store.activate_projection(NAME, 1)  # switching back
    assert await active_version(any_store, NAME) == 1
    with pytest.raises(ProjectionError, match="int >= 1"):
        await any_store.activate_projection(NAME, 0)
    with pytest.raises(ProjectionError, match="cannot be empty"):
        await any_store.activate_projection("", 2)
    assert await any_store.active_projection_versions() == {NAME: 1, "test_rebuild.other": 3}


class Collected(Projector, name="test_rebuild.collected", version=2):
    """Keeps the students it saw in memory (so it runs on every store)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    @projects
    async def _registered(self, event: Registered, context: ProjectionContext) -> None:
        self.seen.append(event.student)


async def test_rebuild_on_every_store(any_store: EventStore) -> None:
    empty: list[tuple[int, int]] = []
    projector = Collected()
    worker = ProjectionWorker(any_store, [projector])
    assert await worker.rebuild(projector, progress=lambda d, t: empty.append((d, t))) == 0
    assert empty == [(0, 0)]
    await any_store.activate_projection(projector.name, 1)  # back, to rebuild again
    head = await seed(any_store, 10)
    reports: list[tuple[int, int]] = []
    applied = await worker.rebuild(projector, progress=lambda d, t: reports.append((d, t)))
    assert applied == 8  # the registrations
    assert projector.seen == [f"p{n}" for n in range(10) if n % 5 != 4]
    assert_progress(reports, head)
    assert await active_version(any_store, projector) == 2


# -- rebuilding --------------------------------------------------------------------------


async def test_rebuild_switches_to_the_new_version_while_the_old_keeps_serving(
    sql_store: SqlAlchemyEventStore, model: Model
) -> None:
    store = sql_store
    old, new = Roster(model), RosterV2(model)
    await seed(store, 40)
    serving = ProjectionWorker(store, [old], max_wait=0.05)
    await serving.catch_up()
    reports: list[tuple[int, int]] = []
    paused, resume, rebuilt = anyio.Event(), anyio.Event(), anyio.Event()
    stop, stopped = anyio.Event(), anyio.Event()

    async def progress(done: int, total: int) -> None:
        reports.append((done, total))
        if 0 < done < total and not paused.is_set():
            paused.set()  # between two batches: let the test look around
            await resume.wait()

    async def rebuild() -> None:
        worker = ProjectionWorker(store, [new], batch_size=5)
        await worker.rebuild(new, progress=progress)
        rebuilt.set()

    async with anyio.create_task_group() as group:
        group.start_soon(serving.run)
        group.start_soon(keep_writing, store, stop, stopped)
        group.start_soon(rebuild)
        with anyio.fail_after(PATIENCE):
            await paused.wait()
        # Mid-rebuild: version 1 serves, and is kept up to date.
        assert await active_version(store, NAME) == 1
        marker = await store.append("marker", [NewEvent.of(Registered(student="zed"))])
        await wait_for_projection(store, old, marker.global_positions[0], timeout=PATIENCE)
        assert ("marker", "zed") in await model.rows(store, 1)
        partial = await model.rows(store, 2)
        assert partial
        assert ("marker", "zed", "zed in marker") not in partial
        resume.set()
        with anyio.fail_after(PATIENCE):
            await rebuilt.wait()
        assert await active_version(store, NAME) == 2
        stop.set()
        await stopped.wait()
        await wait_for_projection(store, old, await store.log_head(), timeout=PATIENCE)
        group.cancel_scope.cancel()

    await ProjectionWorker(store, [new]).catch_up()  # as its worker would, from now on
    events = await log(store)
    assert await model.rows(store, 1) == serial_replay(events, 1)
    assert await model.rows(store, 2) == serial_replay(events, 2)
    assert_progress(reports, reports[0][1])
    assert reports[0][1] >= 40  # the head when the rebuild began


async def test_an_interrupted_rebuild_resumes_without_duplicates(
    sql_store: SqlAlchemyEventStore, model: Model
) -> None:
    store = sql_store
    head = await seed(store, 30)
    new = RosterV2(model)
    seen = 0

    def cancel_mid_batch(recorded: RecordedEvent) -> None:
        nonlocal seen
        seen += 1
        if seen == 14:  # the middle of the fourth batch: its rows roll back
            scope.cancel()

    new.interrupt = cancel_mid_batch
    first: list[tuple[int, int]] = []
    with anyio.CancelScope() as scope:
        worker = ProjectionWorker(store, [new], batch_size=5)
        await worker.rebuild(new, progress=lambda d, t: first.append((d, t)))
    assert scope.cancelled_caught
    checkpoint = (await store.load_checkpoints([new.key]))[new.key]
    assert 0 < checkpoint.global_position < head
    assert first[-1][0] == checkpoint.global_position
    assert await model.rows(store, 2) == serial_replay(await log(store, checkpoint), 2)
    assert await active_version(store, NAME) == 1

    new.interrupt = None
    resumed: list[tuple[int, int]] = []
    again = ProjectionWorker(store, [new], batch_size=5)
    applied = await again.rebuild(new, progress=lambda d, t: resumed.append((d, t)))
    events = await log(store)
    assert applied == len([e for e in events if e.log_position > checkpoint])
    assert resumed[0] == (checkpoint.global_position, head)  # from where it stopped
    assert_progress(resumed, head)
    assert await model.rows(store, 2) == serial_replay(events, 2)
    assert await active_version(store, NAME) == 2


async def test_rebuild_follows_the_worker_that_runs_the_new_version(
    sql_store: SqlAlchemyEventStore, model: Model
) -> None:
    store = sql_store
    first = await seed(store, 1)
    head = await seed(store, 20)
    old, new = Roster(model), RosterV2(model)
    running = ProjectionWorker(store, [old, new], max_wait=0.05)
    reports: list[tuple[int, int]] = []
    async with anyio.create_task_group() as group:
        group.start_soon(running.run)
        await wait_for_projection(store, new, first, timeout=PATIENCE)  # it holds the lease
        rebuilding = ProjectionWorker(store, [new], lease_retry=0.05)
        applied = await rebuilding.rebuild(new, progress=lambda d, t: reports.append((d, t)))
        group.cancel_scope.cancel()
    assert applied == 0  # the running worker did the work
    assert_progress(reports, head)
    assert await model.rows(store, 2) == serial_replay(await log(store), 2)
    assert await active_version(store, NAME) == 2


async def test_rebuild_refuses_the_active_version(
    sql_store: SqlAlchemyEventStore, model: Model
) -> None:
    worker = ProjectionWorker(sql_store, [Roster(model), RosterV2(model)])
    with pytest.raises(ProjectionError, match=r"version 1 of 'test_rebuild\.roster' is the active"):
        await worker.rebuild(Roster(model))
    await worker.rebuild(RosterV2(model), activate=False)
    assert await active_version(sql_store, NAME) == 1
    await worker.rebuild(RosterV2(model))
    with pytest.raises(ProjectionError, match=r"version 2 of 'test_rebuild\.roster' is the active"):
        await worker.rebuild(RosterV2(model))
