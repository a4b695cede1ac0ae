"""The composition root: the one place that wires the registration context together.

Importing the package creates nothing; `bootstrap()` makes the engine (if given a URL),
the store, the context's tables, the student directory and read models, and returns a
`Registration`: its use cases (commands in, typed decisions out), its queries, and the
long-running pieces that keep it going (projections, the waitlist process, the outbox
relay, the consumer of records' events), for the caller to run where it wants.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import anyio
from sqlalchemy.ext.asyncio import AsyncEngine

from eventcore import (
    ConsumerWorker,
    Message,
    MessageSource,
    OutboxRelay,
    ProcessManagerError,
    ProcessManagerWorker,
    ProjectionWorker,
    Publisher,
    SqlAlchemyEventStore,
    UnitOfWork,
)
from university.database import ContextServices
from university.messaging import Subscription
from university.registration.application import cataloguing, registering
from university.registration.application.commands import (
    CatalogueCourse,
    ChangeCapacity,
    DropSection,
    OfferSection,
    RegisterForSection,
    ScheduleTerm,
    SwapSections,
)
from university.registration.application.concurrency import CommandMetrics, Retries, StreamGate
from university.registration.application.loading import Services
from university.registration.application.ports import Clock
from university.registration.application.publishing import RegistrationContract
from university.registration.application.queries import RegistrationQueries
from university.registration.application.records_feed import StudentRecordsConsumer, ingest
from university.registration.application.results import (
    Accepted,
    DropDecision,
    RegistrationDecision,
    SwapDecision,
)
from university.registration.application.waitlist import sections_of, waitlist_promotion
from university.registration.contracts import TOPICS
from university.registration.infrastructure.directory import SqlStudentDirectory
from university.registration.infrastructure.inbox import SqlBulkInbox
from university.registration.infrastructure.locks import postgres_stream_lock
from university.registration.infrastructure.projections import (
    AuditProjector,
    SchedulesProjector,
    SectionsProjector,
)
from university.registration.infrastructure.read_models import SqlReadModels
from university.registration.infrastructure.store import engine_for, registration_store
from university.registration.infrastructure.tables import RegistrationTables

__all__ = ["WAITLIST_RESTART", "Registration", "bootstrap"]

WAITLIST_RESTART = 1.0
"""Seconds before the waitlist process runs again after giving up on a batch."""

_log = logging.getLogger("university.registration")


def _now() -> datetime:
    return datetime.now(UTC)


async def bootstrap(
    database_url_or_engine: str | AsyncEngine,
    *,
    schema: str | None = None,
    create_tables: bool = True,
    clock: Clock = _now,
    serialise: bool = True,
    database_locks: bool = False,
    attempts: int = 30,
) -> Registration:
    """Wire the registration context to a database and return it, ready to use.

    Args:
        database_url_or_engine: a SQLite or PostgreSQL URL (the `Registration` then owns
            the engine it makes and disposes of it on `aclose()`), or an engine you own.
        schema: a PostgreSQL schema for the context's tables (default: the search path).
        create_tables: create the context's tables if missing (demos and tests; use
            migrations in production).
        clock: the time of each decision (tests pass their own).
        serialise: queue the commands on one section inside this process (see
            `StreamGate`); `False` lets them race, each conflict retried.
        database_locks: on PostgreSQL, also make the commands of several processes take
            turns per section (advisory locks).
        attempts: tries per command when concurrent writers conflict.
    """
    if isinstance(database_url_or_engine, str):
        engine, owns_engine = engine_for(database_url_or_engine), True
    else:
        engine, owns_engine = database_url_or_engine, False
    store = registration_store(engine, schema=schema)
    lock = postgres_stream_lock if database_locks and engine.dialect.name == "postgresql" else None
    gate = StreamGate(serialise=serialise, database_lock=lock)
    registration = Registration(store, clock, gate, Retries(attempts), owns_engine=owns_engine)
    try:
        if create_tables:
            await store.create_schema()
            await registration.tables.create()
    except BaseException:
        await registration.aclose()
        raise
    return registration


class Registration(ContextServices):
    """The registration context, wired: use cases, queries and the workers behind them.

    Use it as an async context manager (or call `aclose()`) to release an engine that
    `bootstrap()` created.
    """

    topics = TOPICS
    """The topics the context publishes its contracts to."""
    subscription = Subscription("registration.student-records", StudentRecordsConsumer.topics())
    """The queue registration consumes records' contracts from."""

    def __init__(
        self,
        store: SqlAlchemyEventStore,
        clock: Clock,
        gate: StreamGate,
        retries: Retries,
        *,
        owns_engine: bool,
    ) -> None:
        super().__init__(store, owns_engine=owns_engine)
        self.tables = RegistrationTables(store)
        self.directory = SqlStudentDirectory(self.tables)
        self.contract = RegistrationContract()
        self.services = Services(self.new_unit_of_work, self.directory, clock, gate, retries)
        self.queries = RegistrationQueries(SqlReadModels(store.engine, self.tables), store)
        self.projectors = [
            SectionsProjector(self.tables),
            SchedulesProjector(self.tables),
            AuditProjector(self.tables),
        ]
        self._bulk_inbox = SqlBulkInbox(store)
        self.waitlist = waitlist_promotion(self.directory, clock, gate)
        self.projection_worker = ProjectionWorker(store, self.projectors, max_wait=0.2)
        self.process_worker = ProcessManagerWorker(
            # One event per batch with database locks: a batch locking two sections in
            # the order of its events could wait in a circle with a swap.
            store, [self.waitlist], max_wait=0.2, retries=10,
            batch_size=1 if gate.database_lock else 20,
            mappings=[self.contract],
            batch_lock=lambda batch: gate.entered(sections_of(batch)),
        )  # fmt: skip

    @property
    def metrics(self) -> CommandMetrics:
        """Decisions and conflicts of the student commands so far."""
        return self.services.retries.metrics

    def new_unit_of_work(self) -> UnitOfWork:
        """A fresh unit of work on the context's store, publishing through its outbox."""
        return UnitOfWork(self.store, mappings=[self.contract])

    # -- the registrar's commands ---------------------------------------------------------

    async def schedule_term(self, command: ScheduleTerm) -> Accepted:
        """Set up a term (see `cataloguing.schedule_term`)."""
        return await cataloguing.schedule_term(command, self.services)

    async def catalogue_courses(self, commands: Sequence[CatalogueCourse]) -> list[Accepted]:
        """Add courses to the catalogue, in one transaction."""
        return await cataloguing.catalogue_courses(commands, self.services)

    async def offer_sections(self, commands: Sequence[OfferSection]) -> list[Accepted]:
        """Offer sections, in one transaction."""
        return await cataloguing.offer_sections(commands, self.services)

    async def change_capacity(self, command: ChangeCapacity) -> Accepted:
        """Change a section's seats (freed seats go to its waitlist)."""
        return await cataloguing.change_capacity(command, self.services)

    # -- the student's commands -----------------------------------------------------------

    async def register(self, command: RegisterForSection) -> RegistrationDecision:
        """Register a student: enrolled, waitlisted, or refused with the reason."""
        return await registering.register_for_section(command, self.services)

    async def drop(self, command: DropSection) -> DropDecision:
        """Drop a section (a seat, or a place in line), or refuse with the reason."""
        return await registering.drop_section(command, self.services)

    async def swap(self, command: SwapSections) -> SwapDecision:
        """Drop one section and add another as one decision, or refuse with the reason."""
        return await registering.swap_sections(command, self.services)

    # -- what records tells ---------------------------------------------------------------

    def records_worker(self, source: MessageSource, *, retry_delay: float = 1.0) -> ConsumerWorker:
        """A `ConsumerWorker` keeping the student directory from `source` (records' events)."""
        consumer = StudentRecordsConsumer(self.directory)
        return ConsumerWorker(self.store, consumer, source, retry_delay=retry_delay)

    async def ingest_records(self, messages: Sequence[Message]) -> int:
        """Handle records' messages in bulk, in one transaction; return how many were new."""
        async with UnitOfWork(self.store) as uow:  # SQLite: BEGIN IMMEDIATE, a real transaction
            handled = await ingest(uow.connection, messages, self.directory, self._bulk_inbox)
            await uow.commit()
        return handled

    # -- the workers ----------------------------------------------------------------------

    def relay(self, publisher: Publisher, *, poll_interval: float = 0.5) -> OutboxRelay:
        """An `OutboxRelay` publishing the context's outbox through `publisher`."""
        return OutboxRelay(self.store, publisher, poll_interval=poll_interval)

    async def run_workers(self) -> None:
        """Run the projections and the waitlist process until cancelled.

        A waitlist batch that keeps conflicting with students' commands on a busy
        section (the worker gives up after its retries) is tried again after
        `WAITLIST_RESTART` seconds, from the same checkpoint: nothing of it was committed.
        """
        async with anyio.create_task_group() as group:
            group.start_soon(self.projection_worker.run)
            group.start_soon(self._run_waitlist)

    async def _run_waitlist(self) -> None:
        while True:
            try:
                await self.process_worker.run()
                return
            except ProcessManagerError as error:
                _log.warning("waitlist process: %s; again in %g s", error, WAITLIST_RESTART)
                await anyio.sleep(WAITLIST_RESTART)

    async def catch_up(self) -> int:
        """Run the waitlist process and the projections over everything committed so far
        (and what that causes); return how many events they handled."""
        handled = 0
        while True:
            done = await self.process_worker.catch_up()
            done += await self.projection_worker.catch_up()
            handled += done
            if done == 0:
                return handled

    async def wait_for(self, position: int, *, timeout: float = 10.0) -> None:
        """Wait until the read models reflect the log up to `position` (a decision's)."""
        if position:
            await self.projection_worker.wait_for(position, timeout=timeout)
