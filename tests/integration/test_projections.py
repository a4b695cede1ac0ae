"""Projectors and the `ProjectionWorker`: handlers, exactly-once effect, restarts, waiting."""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import anyio
import anyio.lowlevel
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, update

from eventcore import (
    AppendResult,
    CatchUpTimeoutError,
    DomainEvent,
    EventStore,
    InMemoryEventStore,
    LogPosition,
    NewEvent,
    ProjectionContext,
    ProjectionError,
    ProjectionWorker,
    Projector,
    RecordedEvent,
    SqlAlchemyEventStore,
    projects,
    wait_for_projection,
)

pytestmark = pytest.mark.anyio

PATIENCE = 30.0
"""How long to wait for the log to become readable: on a shared PostgreSQL server, any
open transaction holds back every reader of the log (see `read_log`)."""


class SectionOpened(DomainEvent, type_name="test_projections.SectionOpened"):
    """A section opened (no projector here handles it)."""

    capacity: int


class StudentRegistered(
    DomainEvent,
    type_name="test_projections.StudentRegistered",
    aliases=("test_projections.Enrolled",),
):
    """A student registered; stored under an older name too."""

    student: str


class StudentDropped(DomainEvent, type_name="test_projections.StudentDropped"):
    """A student dropped the section."""

    student: str


# -- the read model: a roster, and a count per section (not idempotent: +1 per event) ----


@dataclass(frozen=True)
class ReadModel:
    """The application's own tables, next to the event tables."""

    roster: Table
    counts: Table

    @classmethod
    async def create(cls, store: SqlAlchemyEventStore) -> ReadModel:
        """Create the tables in the store's database (and schema)."""
        metadata = MetaData(schema=store.tables.schema)
        model = cls(
            Table(
                "test_projections_roster",
                metadata,
                Column("id", Integer, primary_key=True, autoincrement=True),
                Column("section", String(50), nullable=False),
                Column("student", String(50), nullable=False),
            ),
            Table(
                "test_projections_counts",
                metadata,
                Column("section", String(50), primary_key=True),
                Column("registered", Integer, nullable=False),
            ),
        )
        async with store.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        return model

    async def read(self, store: SqlAlchemyEventStore) -> State:
        """The roster rows (duplicates included) and the counts."""
        async with store.engine.connect() as conn:
            roster = (
                await conn.execute(select(self.roster.c.section, self.roster.c.student))
            ).all()
            counts = (await conn.execute(select(self.counts))).all()
        return State(
            sorted((section, student) for section, student in roster),
            dict(counts),
        )


@dataclass(frozen=True)
class State:
    """What the read model holds."""

    roster: list[tuple[str, str]]
    counts: dict[str, int]


def serial_replay(events: Sequence[RecordedEvent]) -> State:
    """What the read model must hold after every event was applied once, in order."""
    roster: list[tuple[str, str]] = []
    counts: Counter[str] = Counter()
    for recorded in events:
        event = recorded.event
        if isinstance(event, StudentRegistered):
            roster.append((recorded.stream_id, event.student))
            counts[recorded.stream_id] += 1
        elif isinstance(event, StudentDropped):
            roster.remove((recorded.stream_id, event.student))
            counts[recorded.stream_id] -= 1
    return State(sorted(roster), dict(counts))


class RosterProjector(Projector, name="test_projections.roster"):
    """Keeps the roster and the counts; fails on demand, after writing its row."""

    def __init__(self, model: ReadModel, *, failures: dict[str, int] | None = None) -> None:
        self.model = model
        self.failures = dict(failures or {})
        """How many more times to fail on each student's events."""
        self.attempts: list[RecordedEvent] = []
        """Every event a handler ran for, committed or not."""

    @projects
    async def _registered(self, event: StudentRegistered, context: ProjectionContext) -> None:
        section = context.recorded.stream_id
        roster = self.model.roster
        await context.connection.execute(
            insert(roster).values(section=section, student=event.student)
        )
        await self._count(context, section, +1)
        self._maybe_fail(context.recorded, event.student)

    @projects
    async def _dropped(self, event: StudentDropped, context: ProjectionContext) -> None:
        section = context.recorded.stream_id
        roster = self.model.roster
        await context.connection.execute(
            roster.delete().where(roster.c.section == section, roster.c.student == event.student)
        )
        await self._count(context, section, -1)
        self._maybe_fail(context.recorded, event.student)

    async def _count(self, context: ProjectionContext, section: str, change: int) -> None:
        counts = self.model.counts
        done = await context.connection.execute(
            update(counts)
            .where(counts.c.section == section)
            .values(registered=counts.c.registered + change)
        )
        if done.rowcount == 0:
            await context.connection.execute(
                insert(counts).values(section=section, registered=change)
            )

    def _maybe_fail(self, recorded: RecordedEvent, student: str) -> None:
        self.attempts.append(recorded)
        if self.failures.get(student, 0) > 0:
            self.failures[student] -= 1
            raise RuntimeError(f"cannot project {student}")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_store(request: pytest.FixtureRequest) -> SqlAlchemyEventStore:
    """The SQL stores (a read model needs a database)."""
    fixture = {"sqlite": "sqlite_store", "postgres": "postgres_event_store"}[request.param]
    store: SqlAlchemyEventStore = request.getfixturevalue(fixture)
    return store


@pytest.fixture
async def model(sql_store: SqlAlchemyEventStore) -> ReadModel:
    """The read model's tables, empty."""
    return await ReadModel.create(sql_store)


async def _append(store: EventStore, stream: str, *events: DomainEvent) -> AppendResult:
    return await store.append(stream, [NewEvent.of(e) for e in events], stream_type="section")


async def _register(store: EventStore, stream: str, *students: str) -> AppendResult:
    return await _append(store, stream, *(StudentRegistered(student=s) for s in students))


async def _scenario(store: EventStore) -> list[RecordedEvent]:
    """Two sections with registrations and drops, plus events no projector handles."""
    await _append(store, "cs101", SectionOpened(capacity=3), StudentRegistered(student="ada"))
    await _append(store, "cs102", SectionOpened(capacity=2))
    await _register(store, "cs101", "grace", "alan")
    await _append(store, "cs102", StudentRegistered(student="ada"), StudentDropped(student="ada"))
    await _append(store, "cs101", StudentDropped(student="grace"))
    await _register(store, "cs102", "edsger")
    return await _readable(store, 9)


async def _readable(store: EventStore, count: int) -> list[RecordedEvent]:
    """Wait until `count` events are readable in the log (another test's transaction on
    a shared PostgreSQL server may hold the log back for a moment), and return them."""
    with anyio.fail_after(PATIENCE):
        while True:
            found = await store.read_log(limit=count + 1)
            if len(found) >= count:
                break
            await anyio.sleep(0.01)
    assert len(found) == count
    return found


def _handled(events: Sequence[RecordedEvent]) -> list[RecordedEvent]:
    return [e for e in events if isinstance(e.event, StudentRegistered | StudentDropped)]


async def _checkpoint(store: EventStore, projector: Projector) -> LogPosition | None:
    return (await store.load_checkpoints([projector.name])).get(projector.name)


# -- declaring projectors ---------------------------------------------------------------


def test_handlers_are_found_by_the_event_annotation() -> None:
    handlers = RosterProjector.handlers()
    assert set(handlers) == {StudentRegistered, StudentDropped}
    assert handlers[StudentRegistered] is RosterProjector._registered
    assert handlers[StudentDropped] is RosterProjector._dropped


def test_event_types_include_aliases() -> None:
    assert RosterProjector.event_types() == [
        "test_projections.Enrolled",
        "test_projections.StudentDropped",
        "test_projections.StudentRegistered",
    ]


class _Plain(Projector):
    @projects
    async def _opened(self, event: SectionOpened, context: ProjectionContext) -> None:
        pass


class _Override(_Plain, name="test_projections.override"):
    async def _opened(self, event: SectionOpened, context: ProjectionContext) -> None:
        """Not decorated again: still the handler, replacing the base's."""


def test_names_and_overrides() -> None:
    assert _Plain.name == "_Plain"
    assert _Override.name == "test_projections.override"
    assert _Override.handlers() == {SectionOpened: _Override._opened}
    assert _Plain.handlers() == {SectionOpened: _Plain._opened}


class _NoEventParameter(Projector):
    @projects
    async def _on(self) -> None:
        pass


class _NotAnEvent(Projector):
    @projects
    async def _on(self, event: int, context: ProjectionContext) -> None:
        pass


class _UnknownName(Projector):
    @projects
    async def _on(self, event: NoSuchEvent, context: ProjectionContext) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass


@pytest.mark.parametrize(
    ("projector", "message"),
    [
        (_NoEventParameter, "_NoEventParameter._on: annotate the event parameter"),
        (_NotAnEvent, "_NotAnEvent._on: annotate the event parameter"),
        (_UnknownName, "_UnknownName._on: cannot resolve its event annotation"),
    ],
)
async def test_misdeclared_handlers_are_a_projection_error(
    projector: type[Projector], message: str
) -> None:
    with pytest.raises(ProjectionError, match=message):
        projector.event_types()
    worker = ProjectionWorker(InMemoryEventStore(), [projector()])
    with pytest.raises(ProjectionError, match=message):
        await worker.catch_up()


def test_projector_names_must_be_unique() -> None:
    with pytest.raises(ProjectionError, match="unique"):
        ProjectionWorker(InMemoryEventStore(), [_Plain(), _Plain()])


# -- events without a handler (any store: the projector keeps its state in memory) ------


class _Names(Projector, name="test_projections.names"):
    """Collects registered students, without a database."""

    def __init__(self) -> None:
        self.students: list[str] = []

    @projects
    async def _registered(self, event: StudentRegistered, context: ProjectionContext) -> None:
        self.students.append(event.student)


async def test_events_without_a_handler_are_skipped(any_store: EventStore) -> None:
    events = await _scenario(any_store)
    projector = _Names()
    worker = ProjectionWorker(any_store, [projector], batch_size=2)
    registered = [e for e in events if isinstance(e.event, StudentRegistered)]
    assert await worker.catch_up() == len(registered)
    assert projector.students == ["ada", "grace", "alan", "ada", "edsger"]
    assert await _checkpoint(any_store, projector) == registered[-1].log_position
    opened = next(e for e in events if isinstance(e.event, SectionOpened))
    async with any_store.session() as session:  # called directly, it is a no-op
        await projector.project(opened, ProjectionContext(opened, session))
    assert len(projector.students) == len(registered)


async def test_handlers_receive_events_stored_under_an_alias() -> None:
    store = InMemoryEventStore()
    store.write_raw("cs101", "test_projections.Enrolled", 1, '{"student": "ada"}', "section")
    projector = _Names()
    assert await ProjectionWorker(store, [projector]).catch_up() == 1
    assert projector.students == ["ada"]


# -- the worker on a SQL read model -----------------------------------------------------


async def test_catch_up_builds_the_read_model(
    sql_store: SqlAlchemyEventStore, model: ReadModel
) -> None:
    events = await _scenario(sql_store)
    projector = RosterProjector(model)
    worker = ProjectionWorker(sql_store, [projector], batch_size=3)
    assert await worker.catch_up() == len(_handled(events))
    assert await model.read(sql_store) == serial_replay(events)
    assert await _checkpoint(sql_store, projector) == _handled(events)[-1].log_position
    assert await worker.catch_up() == 0
    assert len(projector.attempts) == len(_handled(events))


async def test_run_follows_the_log_live(sql_store: SqlAlchemyEventStore, model: ReadModel) -> None:
    await _register(sql_store, "cs101", "ada")
    worker = ProjectionWorker(sql_store, [RosterProjector(model)])
    async with anyio.create_task_group() as group:
        group.start_soon(worker.run)
        for student in ("grace", "alan", "edsger"):
            result = await _register(sql_store, "cs101", student)
            await worker.wait_for(result.global_positions[-1], timeout=PATIENCE)  # read-your-writes
            assert ("cs101", student) in (await model.read(sql_store)).roster
        group.cancel_scope.cancel()
    events = await sql_store.read_log(limit=100)
    assert await model.read(sql_store) == serial_replay(events)


async def test_a_failed_batch_is_rolled_back_and_retried_whole(
    sql_store: SqlAlchemyEventStore, model: ReadModel
) -> None:
    """The handler writes its rows and then fails on the 5th event, once: the rows of
    the batch's first four events are rolled back with it, and the retry applies all."""
    students = [f"s-{n}" for n in range(1, 11)]
    await _register(sql_store, "cs101", *students)
    events = await _readable(sql_store, 10)
    projector = RosterProjector(model, failures={"s-5": 1})
    worker = ProjectionWorker(sql_store, [projector], batch_size=50, retry_delay=0.001)
    assert await worker.catch_up() == 10
    state = await model.read(sql_store)
    assert state == serial_replay(events)
    assert state.roster == sorted(("cs101", s) for s in students)  # no duplicate rows
    assert state.counts == {"cs101": 10}
    tried = [e.event.student for e in projector.attempts if isinstance(e.event, StudentRegistered)]
    assert tried == students[:5] + students


async def test_a_restarted_worker_continues_from_its_checkpoint(
    sql_store: SqlAlchemyEventStore, model: ReadModel
) -> None:
    await _register(sql_store, "cs101", "ada", "grace")
    await _readable(sql_store, 2)
    assert await ProjectionWorker(sql_store, [RosterProjector(model)]).catch_up() == 2
    await _append(sql_store, "cs101", StudentDropped(student="ada"))
    await _register(sql_store, "cs102", "alan")
    events = await _readable(sql_store, 4)
    restarted = RosterProjector(model)
    assert await ProjectionWorker(sql_store, [restarted]).catch_up() == 2
    assert [e.event_id for e in restarted.attempts] == [e.event_id for e in events[2:]]
    assert await model.read(sql_store) == serial_replay(events)


class _Stalling(RosterProjector, name="test_projections.roster"):
    """Hangs in the middle of a batch, for the test to cancel the worker there."""

    def __init__(self, model: ReadModel, stall_on: str) -> None:
        super().__init__(model)
        self.stall_on = stall_on
        self.stalled = anyio.Event()

    @projects
    async def _registered(self, event: StudentRegistered, context: ProjectionContext) -> None:
        await super()._registered(event, context)
        if event.student == self.stall_on:
            self.stalled.set()
            await anyio.sleep_forever()


async def test_a_worker_cancelled_mid_batch_applies_nothing_twice(
    sql_store: SqlAlchemyEventStore, model: ReadModel
) -> None:
    before = asyncio.all_tasks()
    students = [f"s-{n}" for n in range(1, 9)]
    await _register(sql_store, "cs101", *students)
    events = await _readable(sql_store, 8)
    stalling = _Stalling(model, stall_on="s-5")
    with anyio.fail_after(PATIENCE):
        async with anyio.create_task_group() as group:
            group.start_soon(ProjectionWorker(sql_store, [stalling], batch_size=3).run)
            await stalling.stalled.wait()  # s-4 is written, s-5 too, uncommitted
            group.cancel_scope.cancel()
    assert await _checkpoint(sql_store, stalling) == events[2].log_position
    assert (await model.read(sql_store)).roster == [("cs101", s) for s in students[:3]]
    successor = RosterProjector(model)
    assert await ProjectionWorker(sql_store, [successor]).catch_up() == 5
    assert await model.read(sql_store) == serial_replay(events)
    with anyio.fail_after(5):  # no task left behind: it would hang the loop's shutdown
        while asyncio.all_tasks() - before:
            await anyio.lowlevel.checkpoint()
    gc.collect()  # a connection left open by the cancellation would warn now


async def test_after_its_retries_the_projector_stops_before_the_failing_event(
    sql_store: SqlAlchemyEventStore, model: ReadModel
) -> None:
    await _register(sql_store, "cs101", "ada", "grace")
    await _append(sql_store, "cs101", SectionOpened(capacity=1))
    await _register(sql_store, "cs101", "poison", "alan")
    events = await _readable(sql_store, 5)
    poison = events[3]
    projector = RosterProjector(model, failures={"poison": 100})
    worker = ProjectionWorker(sql_store, [projector], batch_size=1, retries=2, retry_delay=0.001)
    with anyio.fail_after(PATIENCE), pytest.raises(ProjectionError) as stopped:
        await worker.run()
    message = str(stopped.value)
    for part in (
        "'test_projections.roster'",
        "test_projections.StudentRegistered",
        "stream 'cs101'",
        "version 4",
        "failed 3 times",
        "cannot project poison",
    ):
        assert part in message
    assert isinstance(stopped.value.__cause__, RuntimeError)
    assert [e.event_id for e in projector.attempts].count(poison.event_id) == 3
    assert await _checkpoint(sql_store, projector) == events[1].log_position
    assert await model.read(sql_store) == serial_replay(events[:2])


async def test_a_failing_batch_leaves_the_checkpoint_where_it_was(
    sql_store: SqlAlchemyEventStore, model: ReadModel
) -> None:
    await _register(sql_store, "cs101", "ada", "poison", "grace")
    await _readable(sql_store, 3)
    projector = RosterProjector(model, failures={"poison": 100})
    worker = ProjectionWorker(sql_store, [projector], retries=1, retry_delay=0.001)
    with pytest.raises(ProjectionError, match="failed 2 times"):
        await worker.catch_up()
    assert await _checkpoint(sql_store, projector) is None
    assert await model.read(sql_store) == State([], {})


# -- waiting for a projection (read-your-writes) ----------------------------------------


async def test_wait_for_projection_by_global_position_or_log_position(
    sql_store: SqlAlchemyEventStore, model: ReadModel
) -> None:
    projector = RosterProjector(model)
    worker = ProjectionWorker(sql_store, [projector])
    async with anyio.create_task_group() as group:
        group.start_soon(worker.run)
        result = await _register(sql_store, "cs101", "ada")
        await wait_for_projection(
            sql_store, projector, result.global_positions[-1], timeout=PATIENCE
        )
        assert (await model.read(sql_store)).roster == [("cs101", "ada")]

        result = await _register(sql_store, "cs102", "grace")
        position = await sql_store.log_position_of(result.global_positions[-1])
        assert isinstance(position, LogPosition)
        # The class will do, too:
        await wait_for_projection(sql_store, RosterProjector, position, timeout=PATIENCE)
        assert ("cs102", "grace") in (await model.read(sql_store)).roster
        assert await _checkpoint(sql_store, projector) == position
        group.cancel_scope.cancel()


async def test_waiting_for_a_projector_that_is_not_running_times_out(
    any_store: EventStore,
) -> None:
    result = await _register(any_store, "cs101", "ada")
    with pytest.raises(CatchUpTimeoutError, match=r"test_projections\.names") as timed_out:
        await wait_for_projection(any_store, _Names, result.global_positions[-1], timeout=0.2)
    assert isinstance(timed_out.value, TimeoutError)
    worker = ProjectionWorker(any_store, [_Names()])
    with pytest.raises(CatchUpTimeoutError):
        await worker.wait_for(result.global_positions[-1], timeout=0.2)


async def test_waiting_for_events_the_projector_does_not_handle(any_store: EventStore) -> None:
    await _register(any_store, "cs101", "ada")
    await _readable(any_store, 1)
    worker = ProjectionWorker(any_store, [_Names()])
    await worker.catch_up()
    result = await _append(any_store, "cs101", SectionOpened(capacity=1))
    # Nothing it handles is pending: no need to run it.
    await worker.wait_for(result.global_positions[-1], timeout=PATIENCE)
    with pytest.raises(ProjectionError, match="no event at global position 999"):
        await worker.wait_for(999)


# -- status and lag ---------------------------------------------------------------------


async def test_status_shows_the_lag_until_caught_up(any_store: EventStore) -> None:
    events = await _scenario(any_store)
    worker = ProjectionWorker(any_store, [_Names()])
    head = await any_store.log_head()
    (behind,) = await worker.status()
    assert behind.name == "test_projections.names"
    assert behind.checkpoint == LogPosition()
    assert behind.head == head == events[-1].global_position
    assert behind.pending
    assert behind.lag_seconds > 0
    await worker.catch_up()
    (caught_up,) = await worker.status()
    registered = [e for e in events if isinstance(e.event, StudentRegistered)]
    assert caught_up.checkpoint == registered[-1].log_position
    assert caught_up.head == head
    assert not caught_up.pending
    assert caught_up.lag_seconds == 0
