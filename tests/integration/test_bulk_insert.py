"""The rows a batch collects go to PostgreSQL through asyncpg only when that is safe."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Column,
    Enum,
    Integer,
    MetaData,
    String,
    Table,
    event,
    select,
)
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from eventcore import SqlAlchemyEventStore
from eventcore._application._bulk_insert import insert_many

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


class Colour(enum.Enum):
    """A value SQLAlchemy stores by name."""

    RED = 1
    BLUE = 2


def _plain(schema: str | None) -> Table:
    return Table(
        "plain",
        MetaData(schema=schema),
        Column("id", String(20), primary_key=True),
        Column("n", Integer, nullable=False),
        Column("note", String(20)),
    )


async def _create(store: SqlAlchemyEventStore, table: Table) -> Table:
    async with store.engine.begin() as conn:
        await conn.run_sync(table.metadata.create_all)
    return table


@contextmanager
def _inserts_seen(engine: AsyncEngine) -> Iterator[list[str]]:
    """The INSERT statements SQLAlchemy itself executes while the block runs."""
    seen: list[str] = []

    def note(*args: Any) -> None:
        statement: str = args[2]
        if statement.startswith("INSERT"):
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", note)


async def _begun(conn: AsyncConnection) -> None:
    await conn.exec_driver_sql("SELECT 1")  # the transaction begins with a statement


async def _rows(engine: AsyncEngine, table: Table) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        query = select(table).order_by(*table.primary_key)
        return [tuple(r) for r in await conn.execute(query)]


async def test_plain_rows_go_through_the_driver_unchanged(
    postgres_event_store: SqlAlchemyEventStore,
) -> None:
    engine = postgres_event_store.engine
    table = await _create(postgres_event_store, _plain(postgres_event_store.tables.schema))
    rows = [{"id": f"r{i}", "n": i, "note": None if i % 2 else "é'\\"} for i in range(5)]
    with _inserts_seen(engine) as seen:
        async with engine.begin() as conn:
            await _begun(conn)
            await insert_many(conn, table, rows)
    assert seen == []  # SQLAlchemy never saw the statement
    assert await _rows(engine, table) == [(r["id"], r["n"], r["note"]) for r in rows]


async def test_rows_outside_a_begun_transaction_are_not_autocommitted(
    postgres_event_store: SqlAlchemyEventStore,
) -> None:
    engine = postgres_event_store.engine
    table = await _create(postgres_event_store, _plain(postgres_event_store.tables.schema))
    with _inserts_seen(engine) as seen:
        async with engine.connect() as conn:  # no statement yet: no transaction on the driver
            await insert_many(conn, table, [{"id": "a", "n": 1, "note": "x"}])
            await conn.rollback()
    assert len(seen) == 1  # SQLAlchemy's path, which begins the transaction
    assert await _rows(engine, table) == []


async def test_values_that_need_type_processing_go_through_sqlalchemy(
    postgres_event_store: SqlAlchemyEventStore,
) -> None:
    engine = postgres_event_store.engine
    table = await _create(
        postgres_event_store,
        Table(
            "typed",
            MetaData(schema=postgres_event_store.tables.schema),
            Column("id", Integer, primary_key=True, autoincrement=False),
            Column("colour", Enum(Colour), nullable=False),
            Column("doc", JSON, nullable=False),
            Column("size", Integer, nullable=False, default=42),
        ),
    )
    typed = [{"id": 1, "colour": Colour.BLUE, "doc": {"a": [1, 2]}, "size": 3}]
    defaulted = [{"id": 2, "colour": Colour.RED, "doc": {}}]
    with _inserts_seen(engine) as seen:
        async with engine.begin() as conn:
            await _begun(conn)
            await insert_many(conn, table, typed)  # Enum and JSON need SQLAlchemy
            await insert_many(conn, table, defaulted)  # so does the default of `size`
    assert len(seen) == 2
    assert await _rows(engine, table) == [
        (1, Colour.BLUE, {"a": [1, 2]}, 3),
        (2, Colour.RED, {}, 42),
    ]


async def test_keys_the_first_row_lacks_are_ignored_as_sqlalchemy_does(
    postgres_event_store: SqlAlchemyEventStore,
) -> None:
    engine = postgres_event_store.engine
    table = await _create(postgres_event_store, _plain(postgres_event_store.tables.schema))
    with _inserts_seen(engine) as seen:
        async with engine.begin() as conn:
            await _begun(conn)
            await insert_many(conn, table, [{"id": "a", "n": 1}, {"id": "b", "n": 2, "note": "x"}])
    assert seen == []
    assert await _rows(engine, table) == [("a", 1, None), ("b", 2, None)]


async def test_rows_with_different_keys_fail_as_sqlalchemy_says(
    postgres_event_store: SqlAlchemyEventStore,
) -> None:
    engine = postgres_event_store.engine
    table = await _create(postgres_event_store, _plain(postgres_event_store.tables.schema))
    rows = [{"id": "a", "n": 1, "note": "x"}, {"id": "b", "n": 2}]
    async with engine.connect() as conn:
        await _begun(conn)
        with pytest.raises(StatementError, match="note"):
            await insert_many(conn, table, rows)
        await conn.rollback()
    assert await _rows(engine, table) == []


async def test_a_schema_translate_map_is_honoured(
    postgres_event_store: SqlAlchemyEventStore,
) -> None:
    engine = postgres_event_store.engine
    real = await _create(postgres_event_store, _plain(postgres_event_store.tables.schema))
    mapped = _plain("placeholder")
    translate = {"placeholder": postgres_event_store.tables.schema}
    async with engine.begin() as conn:
        await conn.execution_options(schema_translate_map=translate)
        await _begun(conn)
        await insert_many(conn, mapped, [{"id": "a", "n": 1, "note": None}])
    assert await _rows(engine, real) == [("a", 1, None)]
