"""The composition root: the one place that wires the registration context together.

Importing the package creates nothing; `bootstrap()` makes the engine (if given a URL),
the store and its tables, and returns a `Registration` whose methods are the handlers
with their dependencies filled in. Its units of work translate the domain events into
registration's public contracts (`RegistrationContract`) and write them to the context's
outbox in the same transaction; `Registration.relay()` makes the relay that publishes them.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from eventcore import OutboxRelay, Publisher, RecordedEvent, SqlAlchemyEventStore, UnitOfWork
from university.database import ContextServices
from university.registration.application import handlers, queries
from university.registration.application.commands import DropStudent, OpenSection, RegisterStudent
from university.registration.application.publishing import RegistrationContract
from university.registration.contracts import TOPIC
from university.registration.domain.section import Section
from university.registration.infrastructure.store import engine_for, registration_store

__all__ = ["Registration", "bootstrap"]


async def bootstrap(
    database_url_or_engine: str | AsyncEngine,
    *,
    schema: str | None = None,
    create_tables: bool = True,
    attempts: int = handlers.DEFAULT_ATTEMPTS,
) -> Registration:
    """Wire the registration context to a database and return it, ready to use.

    Args:
        database_url_or_engine: a SQLite or PostgreSQL URL (the `Registration` then owns
            the engine it makes and disposes of it on `aclose()`), or an engine you own.
        schema: a PostgreSQL schema for the context's tables (default: the search path).
        create_tables: create the context's tables if missing (demos and tests; use
            migrations in production).
        attempts: tries per command when concurrent writers conflict.
    """
    if isinstance(database_url_or_engine, str):
        engine, owns_engine = engine_for(database_url_or_engine), True
    else:
        engine, owns_engine = database_url_or_engine, False
    store = registration_store(engine, schema=schema)
    registration = Registration(store, attempts=attempts, owns_engine=owns_engine)
    try:
        if create_tables:
            await store.create_schema()
    except BaseException:
        await registration.aclose()
        raise
    return registration


class Registration(ContextServices):
    """The registration context, wired: command handlers and queries on one store.

    Every command's events and the integration events they translate to commit in one
    transaction (the transactional outbox). Use it as an async context manager (or call
    `aclose()`) to release an engine that `bootstrap()` created.
    """

    topics = (TOPIC,)
    """The topics the context publishes its contracts to."""

    def __init__(self, store: SqlAlchemyEventStore, *, attempts: int, owns_engine: bool) -> None:
        super().__init__(store, owns_engine=owns_engine)
        self.attempts = attempts
        self.contract = RegistrationContract()

    def new_unit_of_work(self) -> UnitOfWork:
        """A fresh unit of work on the context's store, publishing through its outbox."""
        return UnitOfWork(self.store, mappings=[self.contract])

    def relay(self, publisher: Publisher, *, poll_interval: float = 0.5) -> OutboxRelay:
        """An `OutboxRelay` that publishes the context's outbox through `publisher`.

        Run it (`await relay.run()`) in this process or another; several relays share
        the work. Wakes at once on commits in its process, within `poll_interval`
        seconds otherwise (at once on PostgreSQL, which notifies).
        """
        return OutboxRelay(self.store, publisher, poll_interval=poll_interval)

    async def open_section(self, command: OpenSection) -> None:
        """Handle `OpenSection` (see `handlers.open_section`)."""
        await handlers.open_section(command, self.new_unit_of_work)

    async def register_student(self, command: RegisterStudent) -> None:
        """Handle `RegisterStudent` (see `handlers.register_student`)."""
        await handlers.register_student(command, self.new_unit_of_work, attempts=self.attempts)

    async def drop_student(self, command: DropStudent) -> None:
        """Handle `DropStudent` (see `handlers.drop_student`)."""
        await handlers.drop_student(command, self.new_unit_of_work, attempts=self.attempts)

    async def section(self, section_id: str) -> Section:
        """The section as it is now (`SectionNotFound` if never opened)."""
        return await queries.get_section(self.store, section_id)

    async def history(self, section_id: str) -> list[RecordedEvent]:
        """Every event of the section, oldest first, with its metadata."""
        return await queries.section_history(self.store, section_id)
