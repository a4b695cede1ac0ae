"""The composition root of the records context: the one place that wires it together.

Importing the package creates nothing; `bootstrap()` makes the engine (if given a URL),
the store, the enrolments table and the consumer, and returns `Records`. What feeds the
consumer is the caller's choice of broker: `records.worker(source)`.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from eventcore import ConsumerWorker, MessageSource, SqlAlchemyEventStore
from university.database import ContextServices, engine_for
from university.messaging import Subscription
from university.records.application.enrolments import EnrolmentsConsumer
from university.records.domain.enrolment import Enrolment
from university.records.infrastructure.enrolments import EnrolmentTable
from university.records.infrastructure.store import records_store

__all__ = ["Records", "bootstrap"]


async def bootstrap(
    database_url_or_engine: str | AsyncEngine,
    *,
    schema: str | None = None,
    create_tables: bool = True,
) -> Records:
    """Wire the records context to a database and return it, ready to consume.

    Args:
        database_url_or_engine: a SQLite or PostgreSQL URL (`Records` then owns the
            engine it makes and disposes of it on `aclose()`), or an engine you own.
        schema: a PostgreSQL schema for the context's tables (default: the search path).
        create_tables: create the context's tables if missing (demos and tests; use
            migrations in production).
    """
    if isinstance(database_url_or_engine, str):
        engine, owns_engine = engine_for(database_url_or_engine), True
    else:
        engine, owns_engine = database_url_or_engine, False
    store = records_store(engine, schema=schema)
    records = Records(store, EnrolmentTable(store), owns_engine=owns_engine)
    try:
        if create_tables:
            await store.create_schema()
            await records.enrolments.create()
    except BaseException:
        await records.aclose()
        raise
    return records


class Records(ContextServices):
    """The records context, wired: its consumer, the enrolments it keeps, and queries.

    Use it as an async context manager (or call `aclose()`) to release an engine that
    `bootstrap()` created.
    """

    subscription = Subscription("records.enrolments", EnrolmentsConsumer.topics())
    """The queue records consumes, and the topics (registration's contracts) bound to it."""

    def __init__(
        self, store: SqlAlchemyEventStore, enrolments: EnrolmentTable, *, owns_engine: bool
    ) -> None:
        super().__init__(store, owns_engine=owns_engine)
        self.enrolments = enrolments
        self.consumer = EnrolmentsConsumer(enrolments)

    def worker(self, source: MessageSource, *, retry_delay: float = 1.0) -> ConsumerWorker:
        """A `ConsumerWorker` feeding the consumer from `source`, through the inbox."""
        return ConsumerWorker(self.store, self.consumer, source, retry_delay=retry_delay)

    async def class_list(self, section_id: str) -> list[str]:
        """The students records holds as enrolled in `section_id`, sorted."""
        return await self.enrolments.class_list(section_id)

    async def enrolments_of(self, student_id: str) -> list[Enrolment]:
        """Every section `student_id` enrolled in (withdrawn ones too), by section id."""
        return await self.enrolments.enrolments_of(student_id)
