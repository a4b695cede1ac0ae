"""In-process projection leases, and how the worker uses leases (in memory and on SQLite)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from eventcore import (
    DomainEvent,
    EventStoreSession,
    InMemoryEventStore,
    InProcessLeases,
    LeaseLostError,
    LogPosition,
    NewEvent,
    ProjectionContext,
    ProjectionLease,
    ProjectionWorker,
    Projector,
    SqlAlchemyEventStore,
    projects,
    sqlite_engine,
    wait_for_projection,
)

pytestmark = pytest.mark.anyio


class Counted(DomainEvent, type_name="test_projection_leases.Counted"):
    """A number to count."""

    n: int


class Counter(Projector, name="test_projection_leases.counter"):
    """Remembers the numbers it saw, in this process only."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    @projects
    async def _counted(self, event: Counted, context: ProjectionContext) -> None:
        self.seen.append(event.n)


async def _count(store: InMemoryEventStore, numbers: range) -> None:
    for n in numbers:
        await store.append("numbers", [NewEvent(Counted(n=n))])


async def test_a_lease_is_held_once_at_a_time_and_free_again_afterwards() -> None:
    leases = InProcessLeases()
    async with leases.hold("a") as first:
        assert first is not None
        assert first.name == "a"
        async with leases.hold("a") as second, leases.hold("b") as other:
            assert second is None
            assert other is not None
    async with leases.hold("a") as again:
        assert again is not None


async def test_a_released_lease_guards_no_more_batches(memory_store: InMemoryEventStore) -> None:
    async with InProcessLeases().hold("a") as lease:
        assert lease is not None
    async with memory_store.session() as session:
        with pytest.raises(LeaseLostError):
            await lease.guard(session, LogPosition())


async def test_workers_on_one_store_share_its_leases(memory_store: InMemoryEventStore) -> None:
    await _count(memory_store, range(10))
    holder, other = Counter(), Counter()
    worker = ProjectionWorker(memory_store, [holder], lease_retry=0.01, max_wait=0.01)
    bystander = ProjectionWorker(memory_store, [other], lease_retry=0.01)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(worker.run)
            await wait_for_projection(memory_store, Counter, 10)  # it holds the lease now
            await _count(memory_store, range(10, 20))
            assert await bystander.catch_up() == 0  # waited for the holder instead
            assert holder.seen == list(range(20))
            group.cancel_scope.cancel()
    await _count(memory_store, range(20, 25))
    assert await bystander.catch_up() == 5  # the lease is free now
    assert other.seen == list(range(20, 25))


class _Spy:
    """In-process leases that record the checkpoint each batch is guarded with, and
    where the batch ends (`advance_to`)."""

    def __init__(self) -> None:
        self._inner = InProcessLeases()
        self.guarded: list[LogPosition] = []
        self.ends: list[LogPosition | None] = []

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[ProjectionLease | None]:
        async with self._inner.hold(name) as lease:
            yield None if lease is None else _SpiedLease(lease, self)


class _SpiedLease:
    def __init__(self, lease: ProjectionLease, spy: _Spy) -> None:
        self._lease = lease
        self._spy = spy

    @property
    def name(self) -> str:
        return self._lease.name

    async def guard(
        self,
        session: EventStoreSession,
        checkpoint: LogPosition,
        advance_to: LogPosition | None = None,
    ) -> bool:
        self._spy.guarded.append(checkpoint)
        self._spy.ends.append(advance_to)
        return await self._lease.guard(session, checkpoint, advance_to)


async def test_each_batch_is_guarded_with_the_checkpoint_before_it(
    memory_store: InMemoryEventStore,
) -> None:
    await _count(memory_store, range(5))
    spy = _Spy()
    worker = ProjectionWorker(memory_store, [Counter()], batch_size=2, leases=spy)
    assert await worker.catch_up() == 5
    positions = [r.log_position for r in await memory_store.read_log()]
    assert spy.guarded == [LogPosition(), positions[1], positions[3]]
    assert spy.ends == [positions[1], positions[3], positions[4]]
    # In-process leases leave the checkpoint to the worker, which saved it.
    assert await memory_store.load_checkpoints([Counter.key]) == {Counter.key: positions[4]}
    await _count(memory_store, range(5, 6))
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(worker.run)
            await wait_for_projection(memory_store, Counter, await memory_store.log_head())
            group.cancel_scope.cancel()
    assert spy.guarded[3:] == [positions[4]]  # run() starts from the stored checkpoint


async def test_sqlite_stores_lease_in_process(tmp_path: Path) -> None:
    engine = sqlite_engine(tmp_path / "events.db")
    try:
        store = SqlAlchemyEventStore(engine)
        assert isinstance(store.projection_leases(), InProcessLeases)
        assert store.projection_leases() is store.projection_leases()
    finally:
        await engine.dispose()
