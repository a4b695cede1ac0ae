"""The log read walks its index on a freshly bulk-loaded table that was never analysed.

Without statistics the planner thinks the table holds a tenth of its rows (its JSON
columns look wide) and that a filter on event types matches a handful: it would fetch
every match and sort them instead of walking the (transaction_id, global_position) index
and stopping after a batch. The reads switch sorting off for their statement while the
table's statistics are missing or stale, so the plan is the same whatever they say.
"""

from __future__ import annotations

from typing import Any, cast

import anyio
import asyncpg
import pytest
from sqlalchemy import event, text

from eventcore import DomainEvent, LogPosition, SqlAlchemyEventStore
from eventcore._sqlalchemy._postgres_log_reads import LogReads, _fetch_with_sorting_off
from eventcore._sqlalchemy._postgres_sql import PostgresSql

pytestmark = [pytest.mark.anyio, pytest.mark.postgres, pytest.mark.slow]

ROWS = 200_000


class Scanned(DomainEvent, type_name="test_log_plan_unanalysed.Scanned"):
    """A card was scanned (nine events in ten)."""

    card: int


class Lost(DomainEvent, type_name="test_log_plan_unanalysed.Lost"):
    """A card was reported lost (one event in ten)."""

    card: int


@pytest.fixture
async def loaded(
    postgres_event_store: SqlAlchemyEventStore,
) -> SqlAlchemyEventStore:
    """The store with `ROWS` events bulk-loaded in 100 transactions, never analysed."""
    store = postgres_event_store
    events = store.tables.qualified(store.tables.events)
    async with store.engine.begin() as conn:
        await conn.execute(text(f"ALTER TABLE {events} SET (autovacuum_enabled = false)"))
    await _bulk_load(store, ROWS)
    async with store.engine.connect() as conn:
        analysed = await conn.scalar(
            text("SELECT count(*) FROM pg_stats WHERE schemaname = :s AND attname = 'event_type'"),
            {"s": store.tables.schema},
        )
    assert analysed == 0  # no statistics: the trap is set
    return store


async def _bulk_load(store: SqlAlchemyEventStore, rows: int, offset: int = 0) -> None:
    """`rows` events in transactions of 2,000 (nine in ten `Scanned`)."""
    events = store.tables.qualified(store.tables.events)
    per = 2000
    for batch in range(offset // per, (offset + rows) // per):
        async with store.engine.begin() as conn:
            await conn.execute(
                text(
                    f"INSERT INTO {events} (event_id, stream_id, stream_type, version, "
                    "event_type, schema_version, data, metadata) "
                    f"SELECT gen_random_uuid(), 'card-' || (g % 1000 + {batch} * 1000), "
                    "'Card', 1 + g / 1000, CASE WHEN g % 10 = 0 "
                    f"THEN '{Lost.event_type_name}' ELSE '{Scanned.event_type_name}' END, 1, "
                    "jsonb_build_object('card', g), '{}' "
                    f"FROM generate_series(0, {per - 1}) AS g"
                )
            )


async def _plans(store: SqlAlchemyEventStore, query: str, args: tuple[Any, ...]) -> tuple[str, str]:
    """The plan of `query` as the store runs it, and as a bare statement."""
    pooled = await store.engine.raw_connection()
    try:
        conn = cast("asyncpg.Connection", pooled.driver_connection)
        rows = await _fetch_with_sorting_off(conn, f"EXPLAIN {query}", args)
        bare = await conn.fetch(f"EXPLAIN {query}", *args)
    finally:
        pooled.close()
    return "\n".join(r[0] for r in rows), "\n".join(r[0] for r in bare)


@pytest.mark.parametrize(
    ("types", "streams"),
    [
        ([Scanned.event_type_name], None),
        ([Lost.event_type_name], None),
        ([Lost.event_type_name, "test_log_plan_unanalysed.Other"], ["Card"]),
        (None, ["Card"]),
        (None, None),
    ],
)
async def test_a_log_read_walks_the_index_without_statistics(
    loaded: SqlAlchemyEventStore, types: list[str] | None, streams: list[str] | None
) -> None:
    sql = PostgresSql.for_tables(loaded.tables)
    middle = await loaded.log_position_of(ROWS // 2)
    assert middle is not None
    for after in (LogPosition(), middle):
        args = (str(after.transaction_id), after.global_position, 500, types, streams)
        plan, bare = await _plans(loaded, sql.read_log, args)
        assert "events_log_order" in plan, plan
        assert "Sort" not in plan, plan
        if types is not None and after == LogPosition():
            # The bare statement falls into the trap (or this test would prove nothing).
            assert "Sort" in bare, bare
        plan, _ = await _plans(loaded, sql.read_all, (after.global_position, 500, types, streams))
        assert "Sort" not in plan, plan


def _log_queries(store: SqlAlchemyEventStore) -> list[str]:
    """The statements the store's connections will send from now on."""
    sent: list[str] = []

    def log_queries(dbapi_connection: Any, _record: Any) -> None:
        driver = cast("asyncpg.Connection", dbapi_connection.driver_connection)
        driver.add_query_logger(lambda record: sent.append(record.query))

    event.listen(store.engine.sync_engine, "connect", log_queries)
    return sent


async def test_the_store_sends_its_log_reads_with_sorting_off(
    loaded: SqlAlchemyEventStore,
) -> None:
    sent = _log_queries(loaded)
    await loaded.close()  # the kept connections go: new ones get the logger
    await loaded.engine.dispose()
    types = [Lost.event_type_name]
    batch = await loaded.read_log(LogPosition(), limit=100, event_types=types)
    assert [r.event_type for r in batch] == [Lost.event_type_name] * 100
    assert [r.global_position for r in batch] == sorted(r.global_position for r in batch)
    assert len([r async for r in loaded.read_all(event_types=types, batch_size=5000)]) == ROWS // 10
    await anyio.sleep(0.1)  # query loggers are called soon after, not at once
    reads = [i for i, q in enumerate(sent) if "ORDER BY" in q and "global_position" in q]
    assert reads
    for index in reads:
        assert "SET LOCAL enable_sort = off" in sent[index - 1], sent[index - 1 : index + 1]
        assert sent[index + 1] == "COMMIT"


async def test_reads_are_bare_statements_once_the_statistics_are_fresh(
    loaded: SqlAlchemyEventStore,
) -> None:
    store = SqlAlchemyEventStore(loaded.engine, tables=loaded.tables)
    reads = LogReads(store.tables)
    # An idle server session reports its writes' counts up to ten seconds late; one that
    # ends reports them as it goes. So end the writers' sessions first.
    await store.engine.dispose()
    pooled = await store.engine.raw_connection()
    try:
        conn = cast("asyncpg.Connection", pooled.driver_connection)
        assert await reads._statistics_stale(conn)  # never analysed
        # The writers' row counts reach the server's statistics a second or more after
        # they commit (later on a busy server): an ANALYZE that came before would count
        # them as changes since. So analyse until the statistics hold still.
        with anyio.fail_after(60):
            while True:
                await conn.execute(f"ANALYZE {store.tables.qualified(store.tables.events)}")
                reads.recheck()
                if not await reads._statistics_stale(conn):
                    break
                await anyio.sleep(1.0)
    finally:
        pooled.close()

    sent = _log_queries(store)
    await store.engine.dispose()
    batch = await store.read_log(LogPosition(), limit=100, event_types=[Lost.event_type_name])
    assert len(batch) == 100
    await anyio.sleep(0.1)  # query loggers are called soon after, not at once
    assert not [q for q in sent if "enable_sort" in q]
    await store.close()

    # A bulk load after the ANALYZE makes the statistics stale again.
    await _bulk_load(store, ROWS // 2, offset=ROWS)
    pooled = await store.engine.raw_connection()
    try:
        conn = cast("asyncpg.Connection", pooled.driver_connection)
        for _ in range(100):  # the server publishes its row counts within a second or so
            reads.recheck()
            if await reads._statistics_stale(conn):
                break
            await anyio.sleep(0.05)
        else:
            raise AssertionError("the statistics still look fresh after a bulk load")
    finally:
        pooled.close()
