"""`ProjectionContext.insert`: rows collected per batch; failures still pinned on their event."""

from __future__ import annotations

from typing import ClassVar

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select

from eventcore import (
    DomainEvent,
    EventStore,
    NewEvent,
    ProjectionContext,
    ProjectionError,
    ProjectionWorker,
    Projector,
    SqlAlchemyEventStore,
    projects,
)

pytestmark = pytest.mark.anyio


class Scanned(DomainEvent, type_name="test_projection_rows.Scanned"):
    """A card was scanned at a reader."""

    card: str


def _table(store: SqlAlchemyEventStore) -> Table:
    metadata = MetaData(schema=store.tables.schema)
    return Table(
        "scans",
        metadata,
        Column("card", String(50), nullable=False),
        Column("version", Integer, primary_key=True),
        Column("stream", String(50), primary_key=True),
    )


class Scans(Projector, name="test_projection_rows.scans"):
    """One row per scan, inserted with `context.insert`."""

    poison: ClassVar[str] = ""

    def __init__(self, table: Table) -> None:
        self.table = table

    @projects
    async def _scanned(self, event: Scanned, context: ProjectionContext) -> None:
        recorded = context.recorded
        row = {"card": event.card, "version": recorded.version, "stream": recorded.stream_id}
        if event.card == type(self).poison:
            row["card"] = "x" * 80  # too long for the column: the insert fails
        await context.insert(self.table, row)


@pytest.fixture(params=["sqlite", "postgres"])
def sql_store(request: pytest.FixtureRequest) -> SqlAlchemyEventStore:
    name = {"sqlite": "sqlite_store", "postgres": "postgres_event_store"}[request.param]
    store: SqlAlchemyEventStore = request.getfixturevalue(name)
    return store


async def _count(store: SqlAlchemyEventStore, table: Table) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def _fill(store: EventStore, cards: list[str]) -> None:
    await store.append("reader-1", [NewEvent.of(Scanned(card=card)) for card in cards])


async def test_rows_of_a_batch_are_inserted_together(sql_store: SqlAlchemyEventStore) -> None:
    table = _table(sql_store)
    async with sql_store.engine.begin() as conn:
        await conn.run_sync(table.metadata.create_all)
    await _fill(sql_store, [f"c{i}" for i in range(50)])
    worker = ProjectionWorker(sql_store, [Scans(table)], batch_size=20)
    assert await worker.catch_up() == 50
    assert await _count(sql_store, table) == 50
    assert await worker.catch_up() == 0  # the checkpoint moved with the rows


@pytest.mark.postgres
async def test_a_failing_row_is_pinned_on_its_event(
    postgres_event_store: SqlAlchemyEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PostgreSQL only: SQLite does not enforce VARCHAR lengths, so nothing would fail.
    sql_store = postgres_event_store
    table = _table(sql_store)
    async with sql_store.engine.begin() as conn:
        await conn.run_sync(table.metadata.create_all)
    monkeypatch.setattr(Scans, "poison", "c7")
    await _fill(sql_store, [f"c{i}" for i in range(10)])
    worker = ProjectionWorker(sql_store, [Scans(table)], retries=1, retry_delay=0.001)
    with pytest.raises(ProjectionError, match="version 8"):  # c7 is the 8th event
        await worker.catch_up()
    assert await _count(sql_store, table) == 0  # the whole batch rolled back
