"""The scenarios, each eventcore against the raw asyncpg baseline doing the same work.

A scenario is an async function taking the `Bench` and returning an `Outcome`;
`@scenario("name")` registers it in `SCENARIOS` (run in definition order). To add one,
write the two sides' rounds as closures, time them with `alternate`, and return a
`Throughput` (or another `Outcome`, e.g. for latencies).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from _harness import Bench, Outcome, Throughput, alternate, median, per_second
from _model import (
    ITEM_ADDED,
    Cart,
    ItemAdded,
    SnapshottedCart,
    item_dicts,
    item_events,
    item_fields,
)
from eventcore import NewEvent, Repository

__all__ = ["SCENARIOS", "Scenario", "scenario", "warm_up"]

ScenarioFn = Callable[[Bench], Awaitable[Outcome]]
RoundFn = Callable[[], Awaitable[float]]
"""One timed round of one side: returns events per second."""
Writer = Callable[[Bench, list[str], int], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    """A registered scenario."""

    name: str
    summary: str
    run: ScenarioFn


SCENARIOS: dict[str, Scenario] = {}
"""Every scenario by name, in the order they run."""


def scenario(name: str) -> Callable[[ScenarioFn], ScenarioFn]:
    """Register the decorated function as the scenario `name` (its docstring is the summary)."""

    def register(fn: ScenarioFn) -> ScenarioFn:
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        SCENARIOS[name] = Scenario(name, summary, fn)
        return fn

    return register


# -- the writers of each side -----------------------------------------------------------

_PER_STREAM = 10  # events per stream in append_single: new streams and growing ones
_BATCH = 100  # events per transaction in append_batch
_MIN_SCALING = 1.2  # 32 writers below this multiple of 1 writer's throughput: serialised
# append_concurrent as the foundation issue measured it (docs/benchmarks.md), before the
# gap-free log's (transaction_id, global_position) index: it should stay within 15 %.
_FOUNDATION_CONCURRENT_PER_S = 7_959
_FOUNDATION_CONCURRENT_RATIO = 0.79


async def _ec_appends(bench: Bench, streams: list[str], per_stream: int) -> None:
    """eventcore: one `append` (one transaction) per event, on each stream in turn."""
    store, payloads = bench.store, iter(item_events(0, len(streams) * per_stream))
    for stream in streams:
        for version in range(per_stream):
            await store.append(stream, [NewEvent.of(next(payloads))], expected_version=version)


async def _raw_appends(bench: Bench, streams: list[str], per_stream: int) -> None:
    """Raw: one autocommit INSERT per event, the version computed client-side."""
    raw, payloads = bench.raw, iter(item_dicts(0, len(streams) * per_stream))
    async with bench.pool.acquire() as conn:
        for stream in streams:
            for version in range(1, per_stream + 1):
                await raw.append_one(conn, stream, version, ITEM_ADDED, next(payloads))


async def _ec_batches(bench: Bench, streams: list[str], batches: int) -> None:
    """eventcore: `batches` appends of `_BATCH` events to each stream."""
    store = bench.store
    for stream in streams:
        for b in range(batches):
            events = [NewEvent.of(e) for e in item_events(b * _BATCH, _BATCH)]
            await store.append(stream, events, expected_version=b * _BATCH)


async def _raw_batches(bench: Bench, streams: list[str], batches: int) -> None:
    """Raw: `batches` INSERT ... SELECT FROM unnest(...) of `_BATCH` rows to each stream."""
    raw = bench.raw
    async with bench.pool.acquire() as conn:
        for stream in streams:
            for b in range(batches):
                payloads = item_dicts(b * _BATCH, _BATCH)
                await raw.append_many(conn, stream, b * _BATCH + 1, ITEM_ADDED, payloads)


async def warm_up(bench: Bench) -> None:
    """Bring both sides to a steady state before anything is timed.

    32 concurrent writers on each side open the pools' connections and run the append
    statements on each often enough for PostgreSQL to settle on their plans.
    """
    for side in (_ec_appends, _raw_appends):
        streams = bench.stream_ids("warmup", 32)
        await asyncio.gather(*(side(bench, [stream], 30) for stream in streams))


# -- appends ------------------------------------------------------------------------------


@scenario("append_single")
async def append_single(bench: Bench) -> Outcome:
    """One writer, one event per transaction, on new and growing streams."""
    events = bench.size(quick=500, full=3000)
    count = events // _PER_STREAM

    async def ec() -> float:
        streams = bench.stream_ids("single", count)
        return await per_second(events, _ec_appends(bench, streams, _PER_STREAM))

    async def raw() -> float:
        streams = bench.stream_ids("single", count)
        return await per_second(events, _raw_appends(bench, streams, _PER_STREAM))

    ec_rates, raw_rates = await alternate([ec, raw], bench.rounds)
    return Throughput.from_rounds("append_single", ec_rates, raw_rates, 0.80)


@scenario("append_concurrent")
async def append_concurrent(bench: Bench) -> Outcome:
    """32 concurrent writers, each on its own stream, one event per transaction."""
    writers = 32
    per_writer = bench.size(quick=30, full=150)
    solo = bench.size(quick=300, full=1500)

    def run(side: Writer, tasks: int) -> RoundFn:
        each = per_writer if tasks > 1 else solo

        async def go() -> float:
            streams = bench.stream_ids("concurrent", tasks)
            work = asyncio.gather(*(side(bench, [stream], each) for stream in streams))
            return await per_second(tasks * each, work)

        return go

    ec32, raw32, ec1, raw1 = await alternate(
        [
            run(_ec_appends, writers),
            run(_raw_appends, writers),
            run(_ec_appends, 1),
            run(_raw_appends, 1),
        ],
        bench.rounds,
    )
    ec_scaling, raw_scaling = median(ec32) / median(ec1), median(raw32) / median(raw1)
    vs_foundation = median(ec32) / _FOUNDATION_CONCURRENT_PER_S
    verdict = (
        "scales" if ec_scaling >= _MIN_SCALING else "DOES NOT SCALE: a lock serialises appends?"
    )
    return Throughput.from_rounds(
        "append_concurrent",
        ec32,
        raw32,
        0.70,
        extras={
            "eventcore_1_writer_per_s": median(ec1),
            "raw_1_writer_per_s": median(raw1),
            "eventcore_scaling": ec_scaling,
            "raw_scaling": raw_scaling,
            "foundation_per_s": _FOUNDATION_CONCURRENT_PER_S,
            "vs_foundation": vs_foundation,
        },
        remarks=(
            f"scaling 1 -> {writers} writers: eventcore {median(ec1):,.0f}/s -> "
            f"{median(ec32):,.0f}/s (x{ec_scaling:.2f}); raw {median(raw1):,.0f}/s -> "
            f"{median(raw32):,.0f}/s (x{raw_scaling:.2f}): {verdict}",
            f"foundation issue (no log-order index): {_FOUNDATION_CONCURRENT_PER_S:,}/s, "
            f"ratio {_FOUNDATION_CONCURRENT_RATIO:.2f}; now x{vs_foundation:.2f} of that",
        ),
    )


@scenario("append_batch")
async def append_batch(bench: Bench) -> Outcome:
    """One writer, 100 events per transaction."""
    streams, batches = bench.size(quick=3, full=10), 5
    events = streams * batches * _BATCH

    async def ec() -> float:
        ids = bench.stream_ids("batch", streams)
        return await per_second(events, _ec_batches(bench, ids, batches))

    async def raw() -> float:
        ids = bench.stream_ids("batch", streams)
        return await per_second(events, _raw_batches(bench, ids, batches))

    ec_rates, raw_rates = await alternate([ec, raw], bench.rounds)
    return Throughput.from_rounds("append_batch", ec_rates, raw_rates, 0.90)


# -- loads ------------------------------------------------------------------------------


async def _ec_stream(bench: Bench, cart_type: type[Cart], length: int) -> str:
    """Save a cart of `length` events through a repository, 100 events per save."""
    carts = Repository(cart_type, bench.store)
    [stream] = bench.stream_ids("load", 1)
    cart = cart_type(stream)
    for i in range(length):
        cart.add_item(i)
        if len(cart.pending_events) == _BATCH:
            await carts.save(cart)
    await carts.save(cart)
    return stream


async def _raw_stream(bench: Bench, length: int, *, snapshot: bool = False) -> str:
    """Insert a stream of `length` events (and a snapshot at its end)."""
    [stream] = bench.stream_ids("load", 1)
    async with bench.pool.acquire() as conn:
        for first in range(0, length, _BATCH):
            payloads = [item_fields(i) for i in range(first, min(first + _BATCH, length))]
            await bench.raw.append_many(conn, stream, first + 1, ITEM_ADDED, payloads)
        if snapshot:
            cart = Cart.rehydrate(stream, [ItemAdded(**item_fields(i)) for i in range(length)])
            state = {"quantities": cart.quantities, "total_cents": cart.total_cents}
            await bench.raw.save_snapshot(conn, stream, "raw.Cart", length, state)
    return stream


def _ec_loads(bench: Bench, cart_type: type[Cart], stream: str, length: int, loads: int) -> RoundFn:
    """A round of `loads` eventcore `Repository.get` of `stream`."""
    carts = Repository(cart_type, bench.store)

    async def work() -> None:
        for _ in range(loads):
            cart = await carts.get(stream)
            assert cart.version == length

    async def go() -> float:
        return await per_second(length * loads, work())

    return go


@scenario("load_1000")
async def load_1000(bench: Bench) -> Outcome:
    """Rehydrate a 1000-event aggregate with `Repository.get` (raw: fetch + json.loads)."""
    loads, length = bench.size(quick=10, full=40), 1000
    ec_stream = await _ec_stream(bench, Cart, length)
    raw_stream = await _raw_stream(bench, length)

    async def raw_work() -> None:
        async with bench.pool.acquire() as conn:
            for _ in range(loads):
                payloads = await bench.raw.load(conn, raw_stream)
                assert len(payloads) == length

    async def raw() -> float:
        return await per_second(length * loads, raw_work())

    ec_rates, raw_rates = await alternate(
        [_ec_loads(bench, Cart, ec_stream, length, loads), raw], bench.rounds
    )
    return Throughput.from_rounds("load_1000", ec_rates, raw_rates, 0.50)


@scenario("load_1000_snapshot")
async def load_1000_snapshot(bench: Bench) -> Outcome:
    """The same aggregate with `snapshot_every=100` (raw: snapshot row + events after it)."""
    loads = bench.size(quick=50, full=200)
    ec_1000 = await _ec_stream(bench, SnapshottedCart, 1000)
    ec_10000 = await _ec_stream(bench, SnapshottedCart, 10_000)
    raw_stream = await _raw_stream(bench, 1000, snapshot=True)

    async def raw_work() -> None:
        async with bench.pool.acquire() as conn:
            for _ in range(loads):
                state, after = await bench.raw.load_from_snapshot(conn, raw_stream, "raw.Cart")
                assert state is not None
                assert not after

    async def raw() -> float:
        return await per_second(1000 * loads, raw_work())

    ec_rates, raw_rates, ec_long = await alternate(
        [
            _ec_loads(bench, SnapshottedCart, ec_1000, 1000, loads),
            raw,
            _ec_loads(bench, SnapshottedCart, ec_10000, 10_000, loads),
        ],
        bench.rounds,
    )
    ms_1000 = 1000 * 1000 / median(ec_rates)
    ms_10000 = 1000 * 10_000 / median(ec_long)
    return Throughput.from_rounds(
        "load_1000_snapshot",
        ec_rates,
        raw_rates,
        None,
        extras={"ms_1000": ms_1000, "ms_10000": ms_10000, "raw_ms_1000": 1e6 / median(raw_rates)},
        remarks=(
            f"eventcore load time with snapshots: 1000 events {ms_1000:.2f} ms, "
            f"10000 events {ms_10000:.2f} ms (x{ms_10000 / ms_1000:.2f})",
        ),
    )
