"""Torture test of the gap-free log: concurrent writers, random delays and rollbacks.

Writers run units of work that write a row of their own (so the transaction has an id),
sleep, append to one or two streams of their own (sometimes to a shared one, which
conflicts), sleep again after the append (in an inline projection) and then commit or
roll back: before the append, after it (its positions become gaps), or through a
version conflict. A live subscriber follows the log from the start, checkpointing each
batch in the store and restarting from its stored checkpoint now and then; a catch-up
subscriber reads everything once the writers are done. Both must report exactly the
committed events, in the same order, each once.

The random choices come from a fixed seed (`EVENTCORE_TORTURE_SEED` overrides it),
printed with any failure. Scheduling still varies from run to run.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.abc
import pytest
from sqlalchemy import Column, Integer, MetaData, Table, func, insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from eventcore import (
    Aggregate,
    ConcurrencyError,
    DomainEvent,
    EventStoreTables,
    LogPosition,
    NewEvent,
    ProjectionContext,
    Projector,
    RecordedEvent,
    SqlAlchemyEventStore,
    Subscription,
    UnitOfWork,
    apply,
    postgres_engine,
    projects,
    sqlite_engine,
)
from eventcore.testing.pytest_plugin import (
    postgres_url,
    reachable_postgres_engine,
    throwaway_schema,
)

pytestmark = pytest.mark.anyio

SEED = int(os.environ.get("EVENTCORE_TORTURE_SEED", "20240917"))
RUNTIME_BOUND = 20.0  # seconds for a whole run, writers and subscribers


@dataclass(frozen=True)
class Shape:
    """How hard to torture."""

    writers: int
    units: int
    max_delay: float = 0.01
    rollback_rate: float = 0.2
    shared_rate: float = 0.15
    batch_size: int = 16
    restart_every: int = 10
    """The live subscriber restarts from its stored checkpoint after so many batches."""


POSTGRES = Shape(writers=32, units=15)
SQLITE = Shape(writers=6, units=10, max_delay=0.005, batch_size=8, restart_every=5)
SHARED = "shared"


class Ticked(DomainEvent, type_name="test_log_torture.Ticked"):
    """One event of a unit of work."""

    writer: int
    unit: int
    n: int


class Counter(Aggregate, aggregate_type="test_log_torture.Counter"):
    """A stream that counts its ticks."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.ticks = 0

    def tick(self, writer: int, unit: int, times: int) -> None:
        """Record `times` ticks."""
        for n in range(times):
            self.record(Ticked(writer=writer, unit=unit, n=n))

    @apply
    def _ticked(self, event: Ticked) -> None:
        self.ticks += 1


class _RolledBack(Exception):
    """Raised after the append to roll the unit of work back."""


class _Dawdle(Projector, name="test_log_torture.Dawdle"):
    """An inline projection: sleeps after the append, then lets the commit go or fails it."""

    def __init__(self, delay: float, fail: bool) -> None:
        self._delay: float | None = delay
        self._fail = fail

    @projects
    async def _ticked(self, event: Ticked, context: ProjectionContext) -> None:
        if self._delay is not None:  # once per unit of work, at its first event
            await anyio.sleep(self._delay)
            self._delay = None
            if self._fail:
                raise _RolledBack


@dataclass
class Outcome:
    """What the writers did."""

    committed: set[uuid.UUID] = field(default_factory=set)
    units: int = 0
    """Units of work committed (each wrote one side row)."""
    rolled_back: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str) -> None:
        """Count one unit of work that did not commit."""
        self.rolled_back[kind] = self.rolled_back.get(kind, 0) + 1


class Writer:
    """One writer: `shape.units` units of work on its own streams, one after the other."""

    def __init__(
        self, store: SqlAlchemyEventStore, side: Table, shape: Shape, number: int, out: Outcome
    ) -> None:
        self._store = store
        self._side = side
        self._shape = shape
        self._number = number
        self._out = out
        self._rng = random.Random(SEED * 1000 + number)  # the same choices whatever the timing
        self._streams = {f"w{number}-a": False, f"w{number}-b": False}  # created yet?

    async def run(self) -> None:
        """Run every unit of work."""
        for unit in range(self._shape.units):
            await self._unit(unit)
            await anyio.sleep(self._rng.uniform(0, self._shape.max_delay / 2))

    async def _unit(self, unit: int) -> None:
        rng, shape = self._rng, self._shape
        fate = rng.random()
        fail_after_append = shape.rollback_rate / 2 <= fate < shape.rollback_rate
        streams = sorted(rng.sample(sorted(self._streams), rng.choice([1, 1, 2])))
        if rng.random() < shape.shared_rate:
            streams.append(SHARED)
        dawdle = _Dawdle(rng.uniform(0, shape.max_delay), fail=fail_after_append)
        async with UnitOfWork(self._store, projectors=[dawdle]) as uow:
            await uow.connection.execute(insert(self._side).values(writer=self._number, unit=unit))
            await anyio.sleep(rng.uniform(0, shape.max_delay))
            repo = uow.repository(Counter)
            for stream in streams:
                created = self._streams.get(stream, True)
                counter = await repo.get(stream) if created else Counter(stream)
                counter.tick(self._number, unit, rng.randint(1, 3))
                await (repo.save(counter) if created else repo.add(counter))
            if fate < shape.rollback_rate / 2:
                self._out.count("before the append")
                return  # leaving without commit rolls back
            try:
                await uow.commit()
            except _RolledBack:
                self._out.count("after the append")
                return
            except ConcurrencyError:
                self._out.count("conflict")
                return
            self._out.committed.update(e.event_id for _, e in uow.committed_events)
            self._out.units += 1
            self._streams.update((s, True) for s in streams if s in self._streams)


class Follower:
    """A subscriber that checkpoints every batch in the store, as a projection would."""

    def __init__(
        self, store: SqlAlchemyEventStore, name: str, shape: Shape, *, restart_every: int = 0
    ) -> None:
        self.seen: list[RecordedEvent] = []
        self.restarts = 0
        self.name = name
        self._store = store
        self._shape = shape
        self._restart_every = restart_every

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Follow the log until cancelled; restart from the stored checkpoint now and then."""
        while True:
            found = await self._store.load_checkpoints([self.name])
            after = found.get(self.name, LogPosition())
            assert after == (self.seen[-1].log_position if self.seen else LogPosition())
            async with self._subscription(after) as batches:
                if self.restarts == 0:
                    task_status.started()
                batch_count = 0
                async for batch in batches:
                    async with self._store.session() as session:
                        await session.save_checkpoint(self.name, batch[-1].log_position)
                        await session.commit([])
                    self.seen.extend(batch)  # once checkpointed: cancelling now loses nothing
                    batch_count += 1
                    if batch_count == self._restart_every:
                        break
            self.restarts += 1

    def _subscription(self, after: LogPosition) -> Subscription:
        return Subscription(
            self._store,
            after=after,
            batch_size=self._shape.batch_size,
            min_wait=0.005,
            max_wait=0.05,
        )

    @property
    def ids(self) -> list[uuid.UUID]:
        """The ids of the events seen, in order."""
        return [r.event_id for r in self.seen]


async def _create_side_table(store: SqlAlchemyEventStore) -> Table:
    """A table of the writers' own rows, one per unit of work (in the store's schema)."""
    side = Table(
        "torture_units",
        MetaData(),
        Column("writer", Integer, nullable=False),
        Column("unit", Integer, nullable=False),
        schema=store.tables.schema,
    )
    async with store.engine.begin() as conn:
        await conn.run_sync(side.metadata.create_all)
    return side


async def _torture(store: SqlAlchemyEventStore, shape: Shape) -> None:
    side = await _create_side_table(store)
    out = Outcome()
    first = NewEvent(Ticked(writer=-1, unit=-1, n=0))
    await store.append(SHARED, [first], stream_type=Counter.aggregate_type)
    out.committed.add(first.event_id)
    live = Follower(store, "live", shape, restart_every=shape.restart_every)
    catch_up = Follower(store, "catch-up", shape)
    with anyio.move_on_after(RUNTIME_BOUND) as bound:
        async with anyio.create_task_group() as group:
            await group.start(live.run)
            async with anyio.create_task_group() as writers:
                for number in range(shape.writers):
                    writers.start_soon(Writer(store, side, shape, number, out).run)
            live_while_writing = len(live.seen)
            await group.start(catch_up.run)
            await _until_both_saw(len(out.committed), live, catch_up)
            group.cancel_scope.cancel()
    assert not bound.cancelled_caught, (
        f"not done in {RUNTIME_BOUND} s: {out.units} units committed "
        f"({len(out.committed)} events); live saw {len(live.seen)}, "
        f"catch-up {len(catch_up.seen)}; missing: "
        f"{len(out.committed - set(live.ids))} and {len(out.committed - set(catch_up.ids))}"
    )
    print(
        f"torture: {out.units} units committed ({len(out.committed)} events), not committed: "
        f"{out.rolled_back}; the live subscriber saw {live_while_writing} events while the "
        f"writers ran and restarted {live.restarts} times"
    )
    await _check(store, side, shape, out, live, catch_up)


async def _until_both_saw(count: int, *followers: Follower) -> None:
    while True:
        if all(len(f.seen) >= count for f in followers):
            return
        await anyio.sleep(0.01)


async def _check(
    store: SqlAlchemyEventStore,
    side: Table,
    shape: Shape,
    out: Outcome,
    live: Follower,
    catch_up: Follower,
) -> None:
    assert out.units > 0
    assert out.rolled_back.get("before the append", 0) > 0
    assert out.rolled_back.get("after the append", 0) > 0
    assert out.units + sum(out.rolled_back.values()) == shape.writers * shape.units
    for follower in (live, catch_up):
        assert len(follower.ids) == len(set(follower.ids)), f"{follower.name}: duplicates"
        assert set(follower.ids) == out.committed, f"{follower.name}: not the committed set"
        positions = [r.log_position for r in follower.seen]
        assert positions == sorted(set(positions)), f"{follower.name}: out of order"
        checkpoints = await store.load_checkpoints([follower.name])
        assert checkpoints == {follower.name: positions[-1]}
        assert await store.read_log(positions[-1]) == []  # nothing left, nothing extra
    assert live.ids == catch_up.ids
    assert live.restarts > 0
    stored = [r.event_id async for r in store.read_all()]
    assert sorted(stored) == sorted(out.committed)  # no rolled back event was stored
    assert live.ids == await _commit_order(store)
    async with store.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(side)) == out.units


async def _commit_order(store: SqlAlchemyEventStore) -> list[uuid.UUID]:
    """Every event id in the log's order, straight from the table."""
    events = store.tables.events
    order = (
        [events.c.transaction_id, events.c.global_position]
        if store.engine.dialect.name == "postgresql"
        else [events.c.global_position]
    )
    async with store.engine.connect() as conn:
        rows = await conn.execute(select(events.c.event_id).order_by(*order))
        return [row[0] for row in rows]


@contextmanager
def _seed_on_failure() -> Iterator[None]:
    """Print the seed (and note it on the error) when the test fails."""
    try:
        yield
    except BaseException as error:
        note = f"torture seed: {SEED} (rerun with EVENTCORE_TORTURE_SEED={SEED})"
        print(note)
        error.add_note(note)
        raise


@pytest.fixture
async def postgres_store() -> AsyncIterator[SqlAlchemyEventStore]:
    """PostgreSQL in a throwaway schema, with a connection for every writer."""
    probe = await reachable_postgres_engine()  # skips (or fails under CI) if unreachable
    await probe.dispose()
    pool = POSTGRES.writers + 8  # the writers' units of work, the subscribers, the store
    engine = postgres_engine(postgres_url(), pool_size=pool, max_overflow=8, pool_timeout=30)
    schema = throwaway_schema()
    store = SqlAlchemyEventStore(engine, tables=EventStoreTables(schema=schema))
    try:
        await _fill_pool(engine, pool)
        await store.create_schema()
        yield store
    finally:
        await store.close()
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()


async def _fill_pool(engine: AsyncEngine, size: int) -> None:
    """Open `size` connections into the pool before the test needs them.

    A shared server may be short of connection slots for a while (other test runs hold
    them): wait for room (up to a minute) rather than fail halfway through the test.
    """
    for _ in range(120):
        held: list[AsyncConnection] = []
        try:
            for _ in range(size):
                held.append(await engine.connect())
            return
        except DBAPIError as error:
            if not any(full in str(error) for full in ("too many clients", "slots are reserved")):
                raise
        finally:
            for conn in held:
                await conn.close()  # back into the pool, still open
        await anyio.sleep(0.5)
    pytest.fail(f"PostgreSQL had no room for {size} connections for a minute")


@pytest.mark.postgres
@pytest.mark.slow
async def test_torture_on_postgres(postgres_store: SqlAlchemyEventStore) -> None:
    with _seed_on_failure():
        await _torture(postgres_store, POSTGRES)


async def test_torture_on_sqlite(tmp_path: Path) -> None:
    engine = sqlite_engine(tmp_path / "torture.db")
    store = SqlAlchemyEventStore(engine)
    try:
        await store.create_schema()
        with _seed_on_failure():
            await _torture(store, SQLITE)
    finally:
        await store.close()
        await engine.dispose()
