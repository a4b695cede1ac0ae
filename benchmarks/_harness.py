"""What every scenario needs: both sides set up on one server, fair timing, result rows.

`open_bench` creates eventcore's tables and the raw baseline's equivalent tables, each in
a throwaway schema (dropped afterwards), and checks from the catalog that the two tables
match. `alternate` runs the sides' rounds interleaved, so machine noise hits both alike.
"""

from __future__ import annotations

import gc
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from _raw import Conn, RawEventStore, table_definition
from eventcore import EventStoreTables, SqlAlchemyEventStore, postgres_engine

__all__ = [
    "Bench",
    "Latency",
    "Outcome",
    "Throughput",
    "alternate",
    "median",
    "open_bench",
    "per_second",
]

T = TypeVar("T")
POOL_SIZE = 40
"""Connections in each side's pool (the concurrent scenario runs 32 writers)."""


@dataclass
class Bench:
    """The two sides of a run and its size settings."""

    quick: bool
    engine: AsyncEngine
    store: SqlAlchemyEventStore
    pool: asyncpg.Pool
    raw: RawEventStore
    rounds: int
    """Timed rounds per side (after one warm-up round)."""
    _run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def size(self, *, quick: int, full: int) -> int:
        """Pick the workload size for this mode."""
        return quick if self.quick else full

    def stream_ids(self, label: str, count: int) -> list[str]:
        """`count` fresh stream ids (each call gives new ones)."""
        batch = uuid.uuid4().hex[:8]
        return [f"{label}-{self._run_id}-{batch}-{i}" for i in range(count)]


class Outcome(Protocol):
    """One scenario's result: a row of the printed table and an object of the JSON."""

    @property
    def scenario(self) -> str:
        """The scenario's name."""
        ...

    def cells(self) -> tuple[str, str, str, str]:
        """Table cells: eventcore figure, raw figure, ratio, target and PASS/MISS."""
        ...

    def notes(self) -> list[str]:
        """Extra lines printed under the row."""
        ...

    def as_json(self) -> dict[str, object]:
        """The JSON object of this result."""
        ...


@dataclass(frozen=True)
class Throughput:
    """Events per second on each side; `target` is the minimum eventcore/raw ratio.

    `ratio` is the median of the per-round ratios: each round runs both sides back to
    back, so pairing them cancels slow drifts in the machine's load.
    """

    scenario: str
    eventcore_per_s: float
    raw_per_s: float
    ratio: float
    target: float | None
    extras: dict[str, float] = field(default_factory=dict)
    remarks: tuple[str, ...] = ()

    @classmethod
    def from_rounds(
        cls,
        scenario: str,
        eventcore: Sequence[float],
        raw: Sequence[float],
        target: float | None,
        *,
        extras: dict[str, float] | None = None,
        remarks: tuple[str, ...] = (),
    ) -> Throughput:
        """Summarise the rounds of both sides (events/s each) by their medians."""
        ratios = [e / r for e, r in zip(eventcore, raw, strict=True)]
        return cls(
            scenario, median(eventcore), median(raw), median(ratios), target, extras or {}, remarks
        )

    @property
    def met(self) -> bool | None:
        """Whether the target ratio was reached (`None` without a target)."""
        return None if self.target is None else self.ratio >= self.target

    def cells(self) -> tuple[str, str, str, str]:
        """Table cells (see `Outcome.cells`)."""
        verdict = "" if self.met is None else ("PASS" if self.met else "MISS")
        target = "" if self.target is None else f">= {self.target:.2f} {verdict}"
        return (
            f"{self.eventcore_per_s:,.0f}/s",
            f"{self.raw_per_s:,.0f}/s",
            f"{self.ratio:.2f}",
            target,
        )

    def notes(self) -> list[str]:
        """Extra lines printed under the row."""
        return list(self.remarks)

    def as_json(self) -> dict[str, object]:
        """The JSON object of this result."""
        return {
            "scenario": self.scenario,
            "eventcore_per_s": round(self.eventcore_per_s, 1),
            "raw_per_s": round(self.raw_per_s, 1),
            "ratio": round(self.ratio, 3),
            "target": self.target,
            "met": self.met,
            **{key: round(value, 3) for key, value in self.extras.items()},
        }


@dataclass(frozen=True)
class Latency:
    """Latencies of eventcore alone (there is no raw side); `target` is the maximum p99.

    Printed in the table as the p99 (the p50 and the rest under the row); the JSON
    has `p50_ms`, `p99_ms`, `target` (ms) and `met`, and the scenario's extra figures.
    """

    scenario: str
    p50_ms: float
    p99_ms: float
    target: float
    extras: dict[str, float] = field(default_factory=dict)
    remarks: tuple[str, ...] = ()

    @classmethod
    def from_samples(
        cls,
        scenario: str,
        samples_ms: Sequence[float],
        target: float,
        *,
        extras: dict[str, float] | None = None,
        remarks: tuple[str, ...] = (),
    ) -> Latency:
        """Summarise latency samples (ms) by their 50th and 99th percentiles."""
        cuts = statistics.quantiles(samples_ms, n=100, method="inclusive")
        return cls(scenario, cuts[49], cuts[98], target, extras or {}, remarks)

    @property
    def met(self) -> bool:
        """Whether the p99 stayed below the target."""
        return self.p99_ms < self.target

    def cells(self) -> tuple[str, str, str, str]:
        """Table cells (see `Outcome.cells`): the p99, no raw figure, no ratio."""
        verdict = "PASS" if self.met else "MISS"
        return (f"p99 {self.p99_ms:.1f} ms", "-", "-", f"p99 < {self.target:.0f} ms {verdict}")

    def notes(self) -> list[str]:
        """Extra lines printed under the row: the p50 first."""
        return [f"p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms", *self.remarks]

    def as_json(self) -> dict[str, object]:
        """The JSON object of this result."""
        return {
            "scenario": self.scenario,
            "p50_ms": round(self.p50_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "target": self.target,
            "met": self.met,
            **{key: round(value, 3) for key, value in self.extras.items()},
        }


def median(values: Sequence[float]) -> float:
    """The median of the rounds."""
    return statistics.median(values)


async def per_second(count: int, work: Awaitable[object]) -> float:
    """Run `work` (not yet started) and return `count` divided by the seconds it took."""
    gc.collect()
    start = time.perf_counter()
    await work
    return count / (time.perf_counter() - start)


async def alternate(runs: Sequence[Callable[[], Awaitable[T]]], rounds: int) -> list[list[T]]:
    """Run each of `runs` once to warm up, then `rounds` times, interleaved.

    The order rotates each round (A B C, B C A, ...) so no side always goes first.
    Returns each run's results, in the order of `runs`.
    """
    for run in runs:
        await run()
    results: list[list[T]] = [[] for _ in runs]
    for r in range(rounds):
        for k in range(len(runs)):
            index = (r + k) % len(runs)
            results[index].append(await runs[index]())
    return results


def asyncpg_dsn(url: str) -> str:
    """The URL without SQLAlchemy's `+asyncpg` driver suffix."""
    scheme, rest = url.split("://", 1)
    return f"{scheme.split('+', 1)[0]}://{rest}"


@asynccontextmanager
async def open_bench(url: str, *, quick: bool, rounds: int) -> AsyncIterator[Bench]:
    """Set up both sides on the server at `url`, each in a throwaway schema."""
    suffix = uuid.uuid4().hex[:8]
    engine = postgres_engine(url, pool_size=POOL_SIZE)
    store = SqlAlchemyEventStore(engine, tables=EventStoreTables(schema=f"bench_ec_{suffix}"))
    raw = RawEventStore(f"bench_raw_{suffix}")
    pool = await asyncpg.create_pool(asyncpg_dsn(url), min_size=1, max_size=POOL_SIZE)
    try:
        await store.create_schema()
        async with pool.acquire() as conn:
            await raw.create(conn)
            await _check_same_tables(conn, store.tables.schema or "public", raw.schema)
        yield Bench(quick, engine, store, pool, raw, rounds)
    finally:
        async with pool.acquire() as conn:
            for schema in (store.tables.schema, raw.schema):
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await pool.close()
        await store.close()
        await engine.dispose()


async def _check_same_tables(conn: Conn, ours: str, raws: str) -> None:
    for table in ("eventcore_events", "eventcore_snapshots", "eventcore_checkpoints"):
        expected = await table_definition(conn, ours, table)
        actual = await table_definition(conn, raws, table)
        if expected != actual:
            diff = sorted(set(expected) ^ set(actual))
            raise SystemExit(f"raw table {table} differs from eventcore's: {diff}")
