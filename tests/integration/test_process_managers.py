"""Process managers: a registration saga that reacts with commands and deadlines, once.

A student who registers for a section must pay within a payment window; a payment
completes the registration; when the window closes first, the deadline drops the
student from the section. Faults (a crash after the reactions, a concurrent writer, a
second worker) show that a batch takes effect once: its reactions, commands,
deadlines and checkpoint commit together or not at all.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import anyio
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select

from eventcore import (
    Aggregate,
    AggregateError,
    DomainEvent,
    EventStore,
    InMemoryBroker,
    InMemoryEventStore,
    InProcessLeases,
    IntegrationEvent,
    IntegrationMapping,
    InvalidEventError,
    LogPosition,
    NewEvent,
    OutboxRelay,
    ProcessContext,
    ProcessManager,
    ProcessManagerError,
    ProcessManagerWorker,
    ProjectionError,
    ProjectionLeases,
    RecordedEvent,
    Repository,
    SqlAlchemyEventStore,
    UnitOfWorkError,
    apply,
    reacts,
    translates,
)

pytestmark = pytest.mark.anyio

PATIENCE = 30.0
"""How long to wait for something live: on a shared PostgreSQL server, any open
transaction holds back every reader of the log."""

CHECKPOINT = "process:test_pm.registration"


def later() -> datetime:
    """A moment after every payment window of these tests."""
    return datetime.now(UTC) + timedelta(days=1)


# -- the domain: sections, payments -----------------------------------------------------


class SectionOpened(DomainEvent, type_name="test_process_managers.SectionOpened"):
    capacity: int


class StudentRegistered(DomainEvent, type_name="test_process_managers.StudentRegistered"):
    student_id: str


class StudentDropped(DomainEvent, type_name="test_process_managers.StudentDropped"):
    student_id: str
    reason: str


class SectionNoted(DomainEvent, type_name="test_process_managers.SectionNoted"):
    note: str


class PaymentReceived(DomainEvent, type_name="test_process_managers.PaymentReceived"):
    student_id: str
    section_id: str


class Section(Aggregate, aggregate_type="test_process_managers.Section"):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.students: set[str] = set()

    @classmethod
    def open(cls, id: str, *students: str) -> Section:
        section = cls(id)
        section.record(SectionOpened(capacity=30))
        for student in students:
            section.record(StudentRegistered(student_id=student))
        return section

    def drop(self, student_id: str, reason: str) -> None:
        if student_id not in self.students:
            raise ValueError(f"{student_id} is not registered in {self.id}")
        self.record(StudentDropped(student_id=student_id, reason=reason))

    @apply
    def _opened(self, event: SectionOpened) -> None:
        pass

    @apply
    def _registered(self, event: StudentRegistered) -> None:
        self.students.add(event.student_id)

    @apply
    def _dropped(self, event: StudentDropped) -> None:
        self.students.discard(event.student_id)

    @apply
    def _noted(self, event: SectionNoted) -> None:
        pass


class Account(Aggregate, aggregate_type="test_process_managers.Account"):
    @classmethod
    def pay(cls, student_id: str, section_id: str) -> Account:
        account = cls(f"account-{student_id}")
        account.record(PaymentReceived(student_id=student_id, section_id=section_id))
        return account

    @apply
    def _paid(self, event: PaymentReceived) -> None:
        pass


# -- the saga ---------------------------------------------------------------------------


class RegistrationStarted(DomainEvent, type_name="test_process_managers.RegistrationStarted"):
    section_id: str
    student_id: str
    payment_deadline: uuid.UUID


class RegistrationCompleted(DomainEvent, type_name="test_process_managers.RegistrationCompleted"):
    pass


class RegistrationCancelled(DomainEvent, type_name="test_process_managers.RegistrationCancelled"):
    reason: str


class PaymentDue(DomainEvent, type_name="test_process_managers.PaymentDue"):
    """The payment window closed (a deadline: the process reacts, no state changes)."""


@dataclass
class Faults:
    """What goes wrong in the reactions, for the test that asks."""

    crashes: int = 0
    """Reactions to PaymentDue that raise after their command (then succeed)."""
    meddles: int = 0
    """Reactions to PaymentDue during which a concurrent writer appends to the section."""
    store: EventStore | None = None
    on_start: Callable[[], Awaitable[None]] | None = None
    """Run (once) by the reaction to a registration, after it scheduled its deadline."""


FAULTS = Faults()


@pytest.fixture(autouse=True)
def no_faults() -> Iterator[None]:
    global FAULTS
    FAULTS = Faults()
    yield
    FAULTS = Faults()


class RegistrationProcess(ProcessManager, name="test_pm.registration"):
    """One student's registration in one section, until paid or dropped."""

    payment_window: ClassVar[timedelta] = timedelta(hours=1)

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.status = "new"
        self.section_id = ""
        self.student_id = ""
        self.payment_deadline: uuid.UUID | None = None

    @classmethod
    def process_id_of(cls, recorded: RecordedEvent) -> str | None:
        event = recorded.event
        if isinstance(event, StudentRegistered):
            return f"{recorded.stream_id}.{event.student_id}"
        if isinstance(event, PaymentReceived):
            return f"{event.section_id}.{event.student_id}"
        return None

    @reacts
    async def _registered(self, event: StudentRegistered, context: ProcessContext) -> None:
        if self.status != "new":
            return
        deadline = await context.schedule(self.payment_window, PaymentDue())
        section_id = context.recorded.stream_id
        self.record(RegistrationStarted(section_id=section_id, student_id=event.student_id,
                                        payment_deadline=deadline))  # fmt: skip
        if FAULTS.on_start is not None:
            on_start, FAULTS.on_start = FAULTS.on_start, None
            await on_start()

    @reacts
    async def _paid(self, event: PaymentReceived, context: ProcessContext) -> None:
        if self.status != "awaiting_payment":
            return
        assert self.payment_deadline is not None
        await context.cancel(self.payment_deadline)
        self.record(RegistrationCompleted())

    @reacts
    async def _payment_due(self, event: PaymentDue, context: ProcessContext) -> None:
        if self.status != "awaiting_payment":
            return
        section = await context.repository(Section).get(self.section_id)
        if FAULTS.meddles > 0:
            FAULTS.meddles -= 1
            assert FAULTS.store is not None
            await FAULTS.store.append(
                section.id, [NewEvent.of(SectionNoted(note="meddling"))], stream_type="x"
            )
        section.drop(self.student_id, reason="unpaid")
        self.record(RegistrationCancelled(reason="unpaid"))
        if FAULTS.crashes > 0:
            FAULTS.crashes -= 1
            raise RuntimeError("crash after the reactions, before the commit")

    @apply
    def _started(self, event: RegistrationStarted) -> None:
        self.status = "awaiting_payment"
        self.section_id = event.section_id
        self.student_id = event.student_id
        self.payment_deadline = event.payment_deadline

    @apply
    def _completed(self, event: RegistrationCompleted) -> None:
        self.status = "completed"

    @apply
    def _cancelled(self, event: RegistrationCancelled) -> None:
        self.status = "cancelled"


# -- helpers ----------------------------------------------------------------------------


async def register(store: EventStore, section_id: str, *students: str) -> None:
    await Repository(Section, store).add(Section.open(section_id, *students))


async def process(store: EventStore, process_id: str) -> RegistrationProcess:
    stream_id = RegistrationProcess.stream_id_of(process_id)
    return await Repository(RegistrationProcess, store).get(stream_id)


async def students(store: EventStore, section_id: str) -> set[str]:
    return (await Repository(Section, store).get(section_id)).students


async def event_types(store: EventStore, stream_id: str) -> list[str]:
    return [r.event_type.split(".")[-1] for r in await store.read_stream(stream_id)]


async def checkpoint(store: EventStore) -> LogPosition | None:
    return (await store.load_checkpoints([CHECKPOINT])).get(CHECKPOINT)


def worker(
    store: EventStore, *, retries: int = 3, leases: ProjectionLeases | None = None
) -> ProcessManagerWorker:
    return ProcessManagerWorker(
        store, [RegistrationProcess], retries=retries, retry_delay=0.001, leases=leases
    )


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.postgres)])
def racing_store(request: pytest.FixtureRequest) -> EventStore:
    """Stores where a concurrent writer can interleave with a batch (SQLite has one
    writer at a time: a batch's transaction holds it)."""
    fixture = {"memory": "memory_store", "postgres": "postgres_event_store"}[request.param]
    store: EventStore = request.getfixturevalue(fixture)
    return store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_store(request: pytest.FixtureRequest) -> SqlAlchemyEventStore:
    fixture = {"sqlite": "sqlite_store", "postgres": "postgres_event_store"}[request.param]
    store: SqlAlchemyEventStore = request.getfixturevalue(fixture)
    return store


# -- the saga, step by step ---------------------------------------------------------------


async def test_a_registration_starts_a_process_that_schedules_its_payment_deadline(
    any_store: EventStore,
) -> None:
    await register(any_store, "cs101", "ada", "grace")
    assert await worker(any_store).catch_up() == 2

    ada = await process(any_store, "cs101.ada")
    assert (ada.status, ada.section_id, ada.student_id) == ("awaiting_payment", "cs101", "ada")
    assert ada.id == "test_pm.registration-cs101.ada"
    assert ada.process_id == "cs101.ada"
    deadlines = await any_store.list_deadlines()
    assert sorted(d.stream_id for d in deadlines) == [
        "test_pm.registration-cs101.ada",
        "test_pm.registration-cs101.grace",
    ]
    (mine,) = await any_store.list_deadlines(ada.id)
    assert mine.id == ada.payment_deadline
    assert mine.stream_type == "process.test_pm.registration"
    assert mine.event_type == "test_process_managers.PaymentDue"
    assert mine.due_at > datetime.now(UTC) + timedelta(minutes=50)
    assert await any_store.fire_deadlines() == 0  # not due yet
    assert await checkpoint(any_store) is not None
    assert await worker(any_store).catch_up() == 0  # nothing new: nothing happens again


async def test_status_shows_what_a_manager_has_not_processed_yet(any_store: EventStore) -> None:
    pm = worker(any_store)
    [idle] = await pm.status()
    assert (idle.name, idle.pending, idle.lag_seconds) == (CHECKPOINT, False, 0.0)

    await register(any_store, "cs101", "ada")
    with anyio.fail_after(PATIENCE):  # until the append is readable in the log
        while True:
            [behind] = await pm.status()
            if behind.pending:
                break
            await anyio.sleep(0.01)
    assert behind.checkpoint == LogPosition()
    assert behind.head >= 1

    await pm.catch_up()
    [caught_up] = await pm.status()
    assert (caught_up.pending, caught_up.lag_seconds) == (False, 0.0)
    assert caught_up.checkpoint > LogPosition()


async def test_a_payment_in_time_completes_the_registration_and_cancels_the_deadline(
    any_store: EventStore,
) -> None:
    await register(any_store, "cs101", "ada")
    await worker(any_store).catch_up()
    await Repository(Account, any_store).add(Account.pay("ada", "cs101"))

    assert await worker(any_store).catch_up() == 1
    assert (await process(any_store, "cs101.ada")).status == "completed"
    assert await any_store.list_deadlines() == []
    assert await any_store.fire_deadlines(now=later()) == 0
    assert await students(any_store, "cs101") == {"ada"}


async def test_an_unpaid_registration_is_dropped_when_its_deadline_fires(
    any_store: EventStore,
) -> None:
    await register(any_store, "cs101", "ada", "grace", "alan")
    await worker(any_store).catch_up()
    await Repository(Account, any_store).add(Account.pay("grace", "cs101"))
    await worker(any_store).catch_up()

    assert await any_store.fire_deadlines(now=later()) == 2  # ada's and alan's
    assert await any_store.list_deadlines() == []
    # Both deadlines in one batch: both commands go to the same Section instance.
    assert await worker(any_store).catch_up() == 2
    assert await students(any_store, "cs101") == {"grace"}
    assert (await process(any_store, "cs101.ada")).status == "cancelled"
    assert await event_types(any_store, "test_pm.registration-cs101.ada") == [
        "RegistrationStarted",
        "PaymentDue",
        "RegistrationCancelled",
    ]


async def test_what_a_reaction_causes_carries_its_causation_and_correlation(
    any_store: EventStore,
) -> None:
    await register(any_store, "cs101", "ada")
    await worker(any_store).catch_up()
    await any_store.fire_deadlines(now=later())
    await worker(any_store).catch_up()

    registered = (await any_store.read_stream("cs101"))[1]
    started, due, cancelled = await any_store.read_stream("test_pm.registration-cs101.ada")
    dropped = (await any_store.read_stream("cs101"))[-1]
    correlation = str(registered.event_id)
    assert started.causation_id == correlation
    assert started.correlation_id == correlation
    assert due.event_id == started.event.payment_deadline  # type: ignore[attr-defined]
    assert due.causation_id == correlation
    assert due.correlation_id == correlation
    assert dropped.event == StudentDropped(student_id="ada", reason="unpaid")
    assert dropped.causation_id == str(due.event_id)
    assert dropped.correlation_id == correlation
    assert cancelled.causation_id == str(due.event_id)


async def test_a_live_worker_fires_the_deadline_and_drops_the_student(
    any_store: EventStore,
) -> None:
    class QuickRegistration(RegistrationProcess, name="test_pm.quick"):
        payment_window = timedelta(milliseconds=50)

    live = ProcessManagerWorker(
        any_store, [QuickRegistration], max_wait=0.05, deadline_interval=0.01
    )
    async with anyio.create_task_group() as group:
        group.start_soon(live.run)
        await register(any_store, "cs101", "ada")
        with anyio.fail_after(PATIENCE):
            while True:  # until the deadline's reaction dropped ada
                if not await students(any_store, "cs101"):
                    break
                await anyio.sleep(0.01)
        group.cancel_scope.cancel()
    stream = QuickRegistration.stream_id_of("cs101.ada")
    assert await event_types(any_store, stream) == [
        "RegistrationStarted",
        "PaymentDue",
        "RegistrationCancelled",
    ]


# -- once in effect -----------------------------------------------------------------------


async def test_a_crash_before_the_commit_leaves_nothing_and_the_rerun_acts_once(
    any_store: EventStore,
) -> None:
    await register(any_store, "cs101", "ada")
    await worker(any_store).catch_up()
    await any_store.fire_deadlines(now=later())
    before = await checkpoint(any_store)
    FAULTS.crashes = 1

    with pytest.raises(ProcessManagerError) as stopped:
        await worker(any_store, retries=0).catch_up()
    assert isinstance(stopped.value, ProjectionError)
    assert "'test_pm.registration' stopped: reacting to test_process_managers.PaymentDue" in str(
        stopped.value
    )
    assert "crash after the reactions" in str(stopped.value)
    # The batch's command, state and checkpoint were all rolled back.
    assert await students(any_store, "cs101") == {"ada"}
    assert (await process(any_store, "cs101.ada")).status == "awaiting_payment"
    assert await checkpoint(any_store) == before

    # Restarted, the worker gets the same batch again, and it takes effect once.
    assert await worker(any_store).catch_up() == 1
    assert await students(any_store, "cs101") == set()
    assert await event_types(any_store, "cs101") == [
        "SectionOpened",
        "StudentRegistered",
        "StudentDropped",
    ]
    assert await worker(any_store).catch_up() == 0
    assert (await process(any_store, "cs101.ada")).version == 3


async def test_a_failing_batch_is_retried_and_takes_effect_once(any_store: EventStore) -> None:
    await register(any_store, "cs101", "ada")
    await worker(any_store).catch_up()
    await any_store.fire_deadlines(now=later())
    FAULTS.crashes = 2

    assert await worker(any_store, retries=2).catch_up() == 1
    assert FAULTS.crashes == 0
    assert await event_types(any_store, "cs101") == [
        "SectionOpened",
        "StudentRegistered",
        "StudentDropped",
    ]
    assert await event_types(any_store, "test_pm.registration-cs101.ada") == [
        "RegistrationStarted",
        "PaymentDue",
        "RegistrationCancelled",
    ]


async def test_a_conflict_on_a_commanded_aggregate_rolls_back_and_retries(
    racing_store: EventStore,
) -> None:
    await register(racing_store, "cs101", "ada")
    await worker(racing_store).catch_up()
    await racing_store.fire_deadlines(now=later())
    FAULTS.store, FAULTS.meddles = racing_store, 1

    assert await worker(racing_store).catch_up() == 1
    assert FAULTS.meddles == 0
    # The retry saw the other writer's event, and dropped the student after it, once.
    assert await event_types(racing_store, "cs101") == [
        "SectionOpened",
        "StudentRegistered",
        "SectionNoted",
        "StudentDropped",
    ]
    assert (await process(racing_store, "cs101.ada")).status == "cancelled"


async def test_a_conflict_that_persists_stops_the_worker_with_nothing_committed(
    racing_store: EventStore,
) -> None:
    await register(racing_store, "cs101", "ada")
    await worker(racing_store).catch_up()
    await racing_store.fire_deadlines(now=later())
    before = await checkpoint(racing_store)
    FAULTS.store, FAULTS.meddles = racing_store, 2

    with pytest.raises(ProcessManagerError, match="committing the batch") as stopped:
        await worker(racing_store, retries=1).catch_up()
    assert "WrongExpectedVersionError" in str(stopped.value) or "Concurrency" in str(stopped.value)
    assert await students(racing_store, "cs101") == {"ada"}
    assert (await process(racing_store, "cs101.ada")).status == "awaiting_payment"
    assert await checkpoint(racing_store) == before


async def test_a_batch_delivered_to_two_workers_takes_effect_once(
    racing_store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Two workers without a shared lease get the same registration. The first one's
    reaction waits until the second has committed the process: its own commit then
    conflicts on the process's stream, rolls back its deadline, state and checkpoint,
    and on its retry it finds the process started."""
    await register(racing_store, "cs101", "ada")
    first = worker(racing_store, leases=InProcessLeases())
    second = worker(racing_store, leases=InProcessLeases())
    stream_id = RegistrationProcess.stream_id_of("cs101.ada")
    counts: list[int] = []

    async with anyio.create_task_group() as group:

        async def run_second() -> None:
            counts.append(await second.catch_up())

        async def the_other_worker_commits_first() -> None:
            group.start_soon(run_second)
            with anyio.fail_after(PATIENCE):
                while True:
                    if await racing_store.stream_version(stream_id):
                        return
                    await anyio.sleep(0.005)

        FAULTS.on_start = the_other_worker_commits_first
        counts.append(await first.catch_up())
    assert counts == [1, 1]
    assert "process manager test_pm.registration failed, retrying" in caplog.text
    assert await event_types(racing_store, "test_pm.registration-cs101.ada") == [
        "RegistrationStarted"
    ]
    (deadline,) = await racing_store.list_deadlines()
    assert deadline.id == (await process(racing_store, "cs101.ada")).payment_deadline
    registered = (await racing_store.read_stream("cs101"))[-1]
    done = await checkpoint(racing_store)
    assert done is not None
    assert done.global_position == registered.global_position


# -- the process context --------------------------------------------------------------------


class DropAudit(ProcessManager, name="test_pm.drop-audit"):
    """Writes an audit row per dropped student, on the batch's connection."""

    table: ClassVar[Table]

    @classmethod
    def process_id_of(cls, recorded: RecordedEvent) -> str | None:
        return recorded.stream_id

    @reacts
    async def _dropped(self, event: StudentDropped, context: ProcessContext) -> None:
        values = {"section_id": self.process_id, "student_id": event.student_id}
        await context.connection.execute(insert(self.table).values(values))
        if FAULTS.crashes > 0:
            FAULTS.crashes -= 1
            raise RuntimeError("crash after the write")


async def test_reactions_write_on_the_batch_connection_once(
    sql_store: SqlAlchemyEventStore,
) -> None:
    metadata = MetaData(schema=sql_store.tables.schema)
    DropAudit.table = Table(
        "test_pm_audit",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("section_id", String(50)),
        Column("student_id", String(50)),
    )
    async with sql_store.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    section = Section.open("cs101", "ada")
    section.drop("ada", "moved")
    await Repository(Section, sql_store).add(section)
    FAULTS.crashes = 1

    audit = ProcessManagerWorker(sql_store, [DropAudit], retries=1, retry_delay=0.001)
    assert await audit.catch_up() == 1
    assert await audit.catch_up() == 0
    async with sql_store.engine.connect() as conn:
        rows = (
            await conn.execute(select(DropAudit.table.c.section_id, DropAudit.table.c.student_id))
        ).all()
    assert [tuple(row) for row in rows] == [("cs101", "ada")]
    assert await event_types(sql_store, "test_pm.drop-audit-cs101") == []  # no state


class StudentDroppedContract(
    IntegrationEvent, type_name="test_pm.StudentDropped", topic="test_pm.sections"
):
    student_id: str
    reason: str


class DropContract(IntegrationMapping):
    @translates
    def _dropped(self, event: StudentDropped, recorded: RecordedEvent) -> StudentDroppedContract:
        return StudentDroppedContract(student_id=event.student_id, reason=event.reason)


async def test_what_reactions_cause_is_published_through_the_outbox_with_the_batch(
    sql_store: SqlAlchemyEventStore,
) -> None:
    await register(sql_store, "cs101", "ada", "grace")
    published = ProcessManagerWorker(
        sql_store, [RegistrationProcess], retry_delay=0.001, mappings=[DropContract()]
    )
    await published.catch_up()
    assert await sql_store.fire_deadlines(now=later()) == 2
    await published.catch_up()

    broker = InMemoryBroker()
    await OutboxRelay(sql_store, broker).publish_pending()
    assert sorted(
        StudentDroppedContract.model_validate_json(m.payload).student_id for m in broker.published
    ) == ["ada", "grace"]
    assert {m.key for m in broker.published} == {"cs101"}


async def test_a_batch_lock_is_held_around_each_batch(any_store: EventStore) -> None:
    held: list[str] = []

    @asynccontextmanager
    async def lock(batch: Sequence[RecordedEvent]) -> AsyncIterator[None]:
        held.append(f"enter {len(batch)}")
        yield
        held.append(f"exit, {len(await any_store.list_deadlines())} deadlines committed")

    await register(any_store, "cs101", "ada", "grace")
    locked = ProcessManagerWorker(any_store, [RegistrationProcess], batch_lock=lock)
    assert await locked.catch_up() == 2
    assert held == ["enter 2", "exit, 2 deadlines committed"]


async def test_the_in_memory_store_has_no_connection_for_reactions(
    memory_store: InMemoryEventStore,
) -> None:
    section = Section.open("cs101", "ada")
    section.drop("ada", "moved")
    await Repository(Section, memory_store).add(section)
    audit = ProcessManagerWorker(memory_store, [DropAudit], retries=0)
    with pytest.raises(ProcessManagerError, match="has no SQLAlchemy connection") as stopped:
        await audit.catch_up()
    assert isinstance(stopped.value.__cause__, UnitOfWorkError)


async def test_a_reaction_loads_each_aggregate_once_per_batch(
    memory_store: InMemoryEventStore,
) -> None:
    seen: list[bool] = []

    class Twice(ProcessManager, name="test_pm.twice"):
        @classmethod
        def process_id_of(cls, recorded: RecordedEvent) -> str | None:
            return "one"

        @reacts
        async def _registered(self, event: StudentRegistered, context: ProcessContext) -> None:
            sections = context.repository(Section)
            seen.append(await sections.get("cs101") is await sections.get("cs101"))
            old = await sections.get("cs101", at_version=1)
            assert old.students == set()
            assert old is not await sections.get("cs101")
            with pytest.raises(AggregateError, match="two different instances"):
                await sections.add(Section.open("cs101"))

    await register(memory_store, "cs101", "ada", "grace")
    assert await ProcessManagerWorker(memory_store, [Twice]).catch_up() == 2
    assert seen == [True, True]


# -- declaring and scheduling -----------------------------------------------------------------


async def test_a_manager_is_an_aggregate_with_its_own_streams() -> None:
    assert RegistrationProcess.name == "test_pm.registration"
    assert RegistrationProcess.aggregate_type == "process.test_pm.registration"
    assert RegistrationProcess.stream_id_of("x") == "test_pm.registration-x"
    assert RegistrationProcess.event_types() == [
        "test_process_managers.PaymentDue",
        "test_process_managers.PaymentReceived",
        "test_process_managers.StudentRegistered",
    ]
    assert ProcessManagerWorker.checkpoint_name(RegistrationProcess) == CHECKPOINT


async def test_misdeclared_managers_are_refused(memory_store: InMemoryEventStore) -> None:
    class Unannotated(ProcessManager, name="test_pm.unannotated"):
        @reacts
        async def _on(self, event, context) -> None:  # type: ignore[no-untyped-def]
            pass

    class Idle(ProcessManager, name="test_pm.idle"):
        pass

    with pytest.raises(ProcessManagerError, match="annotate the event parameter"):
        ProcessManagerWorker(memory_store, [Unannotated])
    with pytest.raises(ProcessManagerError, match="has no @reacts method"):
        ProcessManagerWorker(memory_store, [Idle])
    with pytest.raises(ProcessManagerError, match="not a ProcessManager subclass"):
        ProcessManagerWorker(memory_store, [Section])  # type: ignore[list-item]
    with pytest.raises(ProcessManagerError, match="must be unique"):
        ProcessManagerWorker(memory_store, [RegistrationProcess, RegistrationProcess])
    with pytest.raises(ProcessManagerError, match="invalid process name"):
        type("Bad", (ProcessManager,), {}, name="tab\there")


@pytest.mark.parametrize(
    ("when", "message"),
    [
        (datetime(2030, 1, 1), "timezone-aware"),
        ("soon", "a datetime, a timedelta or seconds"),
    ],
)
async def test_scheduling_needs_a_usable_time(
    memory_store: InMemoryEventStore, when: object, message: str
) -> None:
    class Scheduler(ProcessManager, name="test_pm.scheduler"):
        @classmethod
        def process_id_of(cls, recorded: RecordedEvent) -> str | None:
            return "one"

        @reacts
        async def _registered(self, event: StudentRegistered, context: ProcessContext) -> None:
            await context.schedule(when, PaymentDue())  # type: ignore[arg-type]

        @reacts
        async def _due(self, event: PaymentDue, context: ProcessContext) -> None:
            pass

    await register(memory_store, "cs101", "ada")
    with pytest.raises(ProcessManagerError, match=message):
        await ProcessManagerWorker(memory_store, [Scheduler], retries=0).catch_up()


async def test_only_events_the_manager_reacts_to_can_be_scheduled(
    memory_store: InMemoryEventStore,
) -> None:
    class Forgetful(ProcessManager, name="test_pm.forgetful"):
        @classmethod
        def process_id_of(cls, recorded: RecordedEvent) -> str | None:
            return "one"

        @reacts
        async def _registered(self, event: StudentRegistered, context: ProcessContext) -> None:
            await context.schedule(5, PaymentDue())

    await register(memory_store, "cs101", "ada")
    with pytest.raises(ProcessManagerError, match="no @reacts method for") as stopped:
        await ProcessManagerWorker(memory_store, [Forgetful], retries=0).catch_up()
    assert await memory_store.list_deadlines() == []
    assert "reacting to test_process_managers.StudentRegistered" in str(stopped.value)


# -- the store's deadlines ---------------------------------------------------------------------


def _due(minutes: int) -> datetime:
    return datetime(2030, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)


async def _schedule(store: EventStore, *plan: tuple[str, int]) -> list[uuid.UUID]:
    ids = []
    async with store.session() as session:
        for stream_id, minutes in plan:
            new = NewEvent.of(SectionNoted(note=f"{stream_id}@{minutes}"))
            await session.schedule_deadline(stream_id, new, _due(minutes), stream_type="t")
            ids.append(new.event_id)
        await session.commit([])
    return ids


async def test_deadlines_fire_when_due_in_due_order(any_store: EventStore) -> None:
    await register(any_store, "a")
    first, second, third = await _schedule(any_store, ("a", 20), ("b", 5), ("a", 10))
    listed = await any_store.list_deadlines()
    assert [d.id for d in listed] == [second, third, first]
    assert [d.id for d in await any_store.list_deadlines("a")] == [third, first]
    assert listed[0].due_at == _due(5)
    assert listed[0].data == '{"note":"b@5"}'

    assert await any_store.fire_deadlines(now=_due(4)) == 0
    assert await any_store.fire_deadlines(now=_due(10)) == 2
    assert [d.id for d in await any_store.list_deadlines()] == [first]
    a = await any_store.read_stream("a")
    assert [(r.version, r.event_id) for r in a[-1:]] == [(2, third)]
    (b,) = await any_store.read_stream("b")
    assert (b.event_id, b.stream_type, b.event) == (second, "t", SectionNoted(note="b@5"))
    assert await any_store.fire_deadlines(now=_due(60)) == 1
    assert [r.event_id for r in await any_store.read_stream("a")][-1] == first
    assert await any_store.list_deadlines() == []
    assert await any_store.fire_deadlines(now=_due(60)) == 0


async def test_deadlines_commit_with_their_session(any_store: EventStore) -> None:
    (kept, cancelled) = await _schedule(any_store, ("a", 1), ("a", 2))
    async with any_store.session() as session:
        await session.schedule_deadline("a", NewEvent.of(SectionNoted(note="x")), _due(3))
        await session.cancel_deadline(kept)
        await session.rollback()
    assert [d.id for d in await any_store.list_deadlines()] == [kept, cancelled]
    async with any_store.session() as session:
        await session.cancel_deadline(cancelled)
        await session.commit([])
    assert [d.id for d in await any_store.list_deadlines()] == [kept]


async def test_deadlines_fire_at_most_limit_at_a_time(any_store: EventStore) -> None:
    await _schedule(any_store, *[(f"s{n % 2}", n) for n in range(5)])
    fired = [await any_store.fire_deadlines(now=_due(60), limit=2) for _ in range(4)]
    assert fired == [2, 2, 1, 0]
    assert [r.event.note for r in await any_store.read_stream("s0")] == [  # type: ignore[attr-defined]
        "s0@0",
        "s0@2",
        "s0@4",
    ]


async def test_concurrent_firing_appends_each_deadline_once(any_store: EventStore) -> None:
    ids = await _schedule(any_store, *[(f"s{n % 3}", n) for n in range(30)])
    fired: list[int] = []

    async def fire_until_none_left() -> None:
        while count := await any_store.fire_deadlines(now=_due(60), limit=4):
            fired.append(count)

    async with anyio.create_task_group() as group:
        for _ in range(5):
            group.start_soon(fire_until_none_left)
    assert sum(fired) == 30
    stored = [r for s in ("s0", "s1", "s2") for r in await any_store.read_stream(s)]
    assert sorted(r.event_id for r in stored) == sorted(ids)
    assert await any_store.list_deadlines() == []


async def test_deadline_times_must_be_timezone_aware(any_store: EventStore) -> None:
    naive = datetime(2030, 1, 1)
    with pytest.raises(InvalidEventError, match="timezone-aware"):
        await any_store.fire_deadlines(now=naive)
    with pytest.raises(InvalidEventError, match="limit must be an int >= 1"):
        await any_store.fire_deadlines(limit=0)
    async with any_store.session() as session:
        with pytest.raises(InvalidEventError, match="timezone-aware"):
            await session.schedule_deadline("a", NewEvent.of(SectionNoted(note="x")), naive)
        await session.rollback()
