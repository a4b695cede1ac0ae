"""The projection scenarios: a read model in PostgreSQL kept up to date from the log.

Each runs in schemas of its own (dropped afterwards), so the log holds exactly the
events the scenario wrote. The read model is `cart_lines`: one row per `ItemAdded`
(cart, line, sku, quantity, unit price), the same table on both sides.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, insert

from _harness import Bench, Latency, Outcome, Throughput, alternate, per_second
from _model import ITEM_ADDED, ItemAdded, item_dicts, item_events
from _raw import Conn, RawEventStore, table_definition
from _scenarios import scenario
from eventcore import (
    EventStoreTables,
    LogPosition,
    NewEvent,
    ProjectionContext,
    ProjectionWorker,
    Projector,
    SqlAlchemyEventStore,
    postgres_engine,
    projects,
)

__all__ = ["projection_catchup", "projection_live_latency"]

_BATCH = 200  # events per projection batch (ProjectionWorker's default), on both sides
_PER_CART = 100  # events per stream (and per append) when filling the log
_CHECKPOINT = "benchmarks.cart_lines"
_RATE = 1_000  # events/s of load in projection_live_latency
_WRITERS = 4  # writer tasks sharing that load, one event per append each
_MAX_P99_MS = 100.0


# -- the read model -----------------------------------------------------------------------


def cart_lines_table(schema: str) -> Table:
    """The read model: one row per item added to a cart."""
    return Table(
        "cart_lines",
        MetaData(),
        Column("cart_id", String(255), primary_key=True),
        Column("line", BigInteger(), primary_key=True),
        Column("sku", String(32), nullable=False),
        Column("quantity", Integer(), nullable=False),
        Column("unit_price_cents", Integer(), nullable=False),
        schema=schema,
    )


class CartLines(Projector, name=_CHECKPOINT):
    """eventcore's side: one row per event, through `context.insert` (batched per table)."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self._insert = insert(table)

    def row(self, event: ItemAdded, context: ProjectionContext) -> dict[str, object]:
        """The read-model row of an event."""
        recorded = context.recorded
        return {
            "cart_id": recorded.stream_id,
            "line": recorded.version,
            "sku": event.sku,
            "quantity": event.quantity,
            "unit_price_cents": event.unit_price_cents,
        }

    @projects
    async def _added(self, event: ItemAdded, context: ProjectionContext) -> None:
        await context.insert(self.table, self.row(event, context))


class TimedCartLines(Projector, name="benchmarks.timed_cart_lines"):
    """`CartLines` that also notes when each event was projected (`time.perf_counter`)."""

    def __init__(self, table: Table) -> None:
        self._lines = CartLines(table)
        self.projected_at: dict[uuid.UUID, float] = {}
        self._waiting: set[uuid.UUID] = set()
        self._all_projected = anyio.Event()

    async def wait_for(self, event_ids: set[uuid.UUID]) -> None:
        """Wait until the handler has run for each of `event_ids`."""
        self._waiting = event_ids - self.projected_at.keys()
        if self._waiting:
            self._all_projected = anyio.Event()
            await self._all_projected.wait()

    @projects
    async def _added(self, event: ItemAdded, context: ProjectionContext) -> None:
        await context.connection.execute(self._lines._insert, self._lines.row(event, context))
        event_id = context.recorded.event_id
        self.projected_at[event_id] = time.perf_counter()
        if event_id in self._waiting:
            self._waiting.discard(event_id)
            if not self._waiting:
                self._all_projected.set()


# -- sides in schemas of their own ----------------------------------------------------------


@dataclass(frozen=True)
class _Sides:
    store: SqlAlchemyEventStore
    ec_table: Table
    raw: RawEventStore


@asynccontextmanager
async def _dropped_afterwards(bench: Bench, *schemas: str) -> AsyncIterator[None]:
    try:
        yield
    finally:
        async with bench.pool.acquire() as conn:
            for schema in schemas:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def _new_store(bench: Bench, schema: str) -> tuple[SqlAlchemyEventStore, Table]:
    """An eventcore store in `schema`, with its `cart_lines` table."""
    store = SqlAlchemyEventStore(bench.engine, tables=EventStoreTables(schema=schema))
    await store.create_schema()
    table = cart_lines_table(schema)
    async with bench.engine.begin() as conn:
        await conn.run_sync(table.create)
    return store, table


@asynccontextmanager
async def _fresh_sides(bench: Bench) -> AsyncIterator[_Sides]:
    """An eventcore store and a raw store in new schemas, each with a `cart_lines` table."""
    suffix = uuid.uuid4().hex[:8]
    ec_schema, raw = f"bench_ecp_{suffix}", RawEventStore(f"bench_rawp_{suffix}")
    async with _dropped_afterwards(bench, ec_schema, raw.schema):
        store, ec_table = await _new_store(bench, ec_schema)
        try:
            async with bench.pool.acquire() as conn:
                await raw.create(conn)
                await conn.execute(_RAW_READ_MODEL_DDL.format(s=raw.schema))
                ours = await table_definition(conn, ec_schema, "cart_lines")
                if ours != await table_definition(conn, raw.schema, "cart_lines"):
                    raise SystemExit("the raw cart_lines table differs from eventcore's")
            yield _Sides(store, ec_table, raw)
        finally:
            await store.close()


_RAW_READ_MODEL_DDL = """
CREATE TABLE "{s}".cart_lines (
    cart_id varchar(255) NOT NULL,
    line bigint NOT NULL,
    sku varchar(32) NOT NULL,
    quantity integer NOT NULL,
    unit_price_cents integer NOT NULL,
    PRIMARY KEY (cart_id, line)
)
"""


# -- projection_catchup ----------------------------------------------------------------------


async def _fill(bench: Bench, sides: _Sides, events: int) -> None:
    """Put the same `events` events in both logs, `_PER_CART` per append; ANALYZE; wait
    until all are readable (the raw side first: its transactions are then older).
    """
    carts = bench.stream_ids("catchup", events // _PER_CART)
    async with bench.pool.acquire() as conn:
        for c, cart in enumerate(carts):
            payloads = item_dicts(c * _PER_CART, _PER_CART)
            await sides.raw.append_many(conn, cart, 1, ITEM_ADDED, payloads)
    for c, cart in enumerate(carts):
        batch = [NewEvent.of(e) for e in item_events(c * _PER_CART, _PER_CART)]
        await sides.store.append(cart, batch, expected_version=0)
    async with bench.pool.acquire() as conn:
        for schema in (sides.store.tables.schema, sides.raw.schema):
            await conn.execute(f'ANALYZE "{schema}".eventcore_events')
    await _wait_readable(sides.store)


async def _wait_readable(store: SqlAlchemyEventStore) -> None:
    """Wait until the whole log is readable (below every running transaction's xmin).

    A transaction left open anywhere on the server (another program's) holds the log
    back; timing starts only once it has passed what the scenario wrote.
    """
    last = await store.log_position_of(await store.log_head())
    assert last is not None
    before = LogPosition(last.transaction_id, last.global_position - 1)
    for _ in range(1200):
        if await store.read_log(before, limit=1):
            return
        await anyio.sleep(0.05)
    raise SystemExit("a transaction open on the server for a minute holds the log back")


async def _reset(bench: Bench, schema: str) -> None:
    """Empty the read model and forget the checkpoint (before a round, untimed)."""
    async with bench.pool.acquire() as conn:
        await conn.execute(
            f'TRUNCATE "{schema}".cart_lines; DELETE FROM "{schema}".eventcore_checkpoints'
        )


async def _rows(bench: Bench, schema: str) -> int:
    async with bench.pool.acquire() as conn:
        count: int = await conn.fetchval(f'SELECT count(*) FROM "{schema}".cart_lines')
    return count


async def _raw_catch_up(conn: Conn, raw: RawEventStore) -> int:
    """The raw projector: read a batch, then its rows (one executemany) and checkpoint in one
    transaction: the same batched writes as eventcore's `context.insert`."""
    insert_line = (
        f'INSERT INTO "{raw.schema}".cart_lines (cart_id, line, sku, quantity, '
        "unit_price_cents) VALUES ($1, $2, $3, $4, $5)"
    )
    after, applied = await raw.load_checkpoint(conn, _CHECKPOINT), 0
    while rows := await raw.read_log(conn, after, _BATCH, [ITEM_ADDED]):
        async with conn.transaction():
            lines = []
            for stream_id, version, data, _, _ in rows:
                fields = json.loads(data)
                lines.append(
                    (stream_id, version, fields["sku"], fields["quantity"],
                     fields["unit_price_cents"])
                )  # fmt: skip
            await conn.executemany(insert_line, lines)
            after = (rows[-1][3], rows[-1][4])
            await raw.save_checkpoint(conn, _CHECKPOINT, after)
        applied += len(rows)
    return applied


@scenario("projection_catchup")
async def projection_catchup(bench: Bench) -> Outcome:
    """Catch a PostgreSQL read model up from an empty checkpoint (ProjectionWorker.catch_up)."""
    events = bench.size(quick=5_000, full=20_000)
    async with _fresh_sides(bench) as sides:
        await _fill(bench, sides, events)
        ec_schema = sides.store.tables.schema or "public"

        async def ec_work() -> None:
            worker = ProjectionWorker(sides.store, [CartLines(sides.ec_table)], batch_size=_BATCH)
            assert await worker.catch_up() == events

        async def raw_work() -> None:
            async with bench.pool.acquire() as conn:
                assert await _raw_catch_up(conn, sides.raw) == events

        async def ec() -> float:
            await _reset(bench, ec_schema)
            rate = await per_second(events, ec_work())
            assert await _rows(bench, ec_schema) == events
            return rate

        async def raw() -> float:
            await _reset(bench, sides.raw.schema)
            rate = await per_second(events, raw_work())
            assert await _rows(bench, sides.raw.schema) == events
            return rate

        ec_rates, raw_rates = await alternate([ec, raw], bench.rounds)
    return Throughput.from_rounds(
        "projection_catchup",
        ec_rates,
        raw_rates,
        0.60,
        remarks=(
            f"{events:,} events in batches of {_BATCH}, one row per event, batched per table",
        ),
    )


# -- projection_live_latency -----------------------------------------------------------------


_OTHERS_OPEN_SQL = """
SELECT coalesce(max(extract(epoch FROM clock_timestamp() - xact_start)), 0)
FROM pg_stat_activity
WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
  AND query NOT LIKE $1 AND query NOT LIKE '%pg_notify%'
"""


async def _watch_others(bench: Bench, schema: str, longest: list[float]) -> None:
    """Note (in `longest[0]`) the longest transaction that other programs kept open.

    The log is read below the oldest running transaction of the whole server: a
    transaction left open elsewhere (another program's, even in another database)
    delays every subscriber. This tells whether that happened during the measurement.
    """
    async with bench.pool.acquire() as conn:
        while True:
            seconds = await conn.fetchval(_OTHERS_OPEN_SQL, f"%{schema}%")
            longest[0] = max(longest[0], float(seconds))
            await anyio.sleep(0.01)


async def _steady_writer(
    store: SqlAlchemyEventStore,
    carts: list[str],
    count: int,
    start: float,
    appended: dict[uuid.UUID, float],
) -> None:
    """Append `count` events, one per append, at `_RATE / _WRITERS` per second from `start`,
    noting when each append returned.
    """
    interval = _WRITERS / _RATE
    for i, event in enumerate(item_events(0, count)):
        delay = start + i * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        new = NewEvent.of(event)
        cart, version = carts[i // _PER_CART], i % _PER_CART
        await store.append(cart, [new], expected_version=version)
        appended[new.event_id] = time.perf_counter()


async def _steady_load(
    bench: Bench, store: SqlAlchemyEventStore, seconds: float, projector: TimedCartLines
) -> tuple[dict[uuid.UUID, float], float]:
    """`_RATE` events/s for `seconds` from `_WRITERS` staggered writers; wait until all are
    projected. Returns when each append returned, and the rate the writers achieved.
    """
    count = int(_RATE * seconds) // _WRITERS
    appended: dict[uuid.UUID, float] = {}
    start = time.perf_counter() + 0.01
    await asyncio.gather(
        *(
            _steady_writer(
                store,
                bench.stream_ids(f"live{k}", count // _PER_CART + 1),
                count,
                start + k / _RATE,
                appended,
            )
            for k in range(_WRITERS)
        )
    )
    rate = len(appended) / (time.perf_counter() - start)
    with anyio.fail_after(60):
        await projector.wait_for(set(appended))
    return appended, rate


@scenario("projection_live_latency")
async def projection_live_latency(bench: Bench) -> Outcome:
    """Commit to projected, p50/p99, under 1,000 events/s appended by another store."""
    seconds = bench.size(quick=3, full=10)
    schema = f"bench_ecl_{uuid.uuid4().hex[:8]}"
    url = bench.engine.url.render_as_string(hide_password=False)
    async with _dropped_afterwards(bench, schema):
        store, table = await _new_store(bench, schema)
        # The writers' store stands for another process: its own engine, so the worker
        # hears of their appends only through LISTEN/NOTIFY (or by polling).
        writer_engine = postgres_engine(url, pool_size=_WRITERS + 1)
        writers = SqlAlchemyEventStore(writer_engine, tables=store.tables)
        projector = TimedCartLines(table)
        worker = ProjectionWorker(store, [projector], batch_size=_BATCH)
        others = [0.0]
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(worker.run)
                await _steady_load(bench, writers, 1.0, projector)  # warm-up, not counted
                group.start_soon(_watch_others, bench, schema, others)
                appended, rate = await _steady_load(bench, writers, seconds, projector)
                group.cancel_scope.cancel()
        finally:
            await writers.close()
            await writer_engine.dispose()
            await store.close()
    projected = projector.projected_at
    samples = sorted(1000 * (projected[key] - at) for key, at in appended.items())
    return _latency(samples, rate, seconds, 1000 * others[0])


def _latency(samples: list[float], rate: float, seconds: float, others_ms: float) -> Latency:
    p90, worst = statistics.quantiles(samples, n=10, method="inclusive")[8], samples[-1]
    return Latency.from_samples(
        "projection_live_latency",
        samples,
        _MAX_P99_MS,
        extras={
            "events": len(samples),
            "load_per_s": rate,
            "p90_ms": p90,
            "max_ms": worst,
            "min_ms": samples[0],
            "others_open_ms": others_ms,
        },
        remarks=(
            f"{len(samples):,} events in {seconds} s at {rate:,.0f} events/s from "
            f"{_WRITERS} writers on another engine (NOTIFY wake-ups); p90 {p90:.1f} ms, "
            f"max {worst:.1f} ms, min {samples[0]:.1f} ms",
            f"longest transaction other programs held open meanwhile: {others_ms:.0f} ms"
            + (" (it held the log back: rerun on a quiet server)" if others_ms > 50 else ""),
        ),
    )
