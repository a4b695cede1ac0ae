"""Projection leases on PostgreSQL: one worker per projector at a time, failover, fencing."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from subprocess import DEVNULL

import anyio
import pytest
from anyio.abc import Process
from sqlalchemy import Table, insert, select, text

from eventcore import (
    EventStoreSession,
    EventStoreTables,
    LeaseLostError,
    LogPosition,
    NewEvent,
    PostgresLeases,
    ProjectionLease,
    ProjectionLeases,
    ProjectionWorker,
    RecordedEvent,
    SchemaError,
    SqlAlchemyEventStore,
    wait_for_projection,
)
from eventcore.testing.pytest_plugin import (
    postgres_url,
    reachable_postgres_engine,
    throwaway_schema,
)
from tests.integration._failover_worker import BATCH_SIZE, Ticked, TickProjector, ticks_table

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

WORKER_SCRIPT = Path(__file__).with_name("_failover_worker.py")
NAME = TickProjector.name


async def _with_ticks(store: SqlAlchemyEventStore) -> Table:
    """Create the `ticks` read model in the store's schema."""
    assert store.tables.schema is not None
    table = ticks_table(store.tables.schema)
    async with store.engine.begin() as conn:
        await conn.run_sync(table.create)
    return table


async def _tick(store: SqlAlchemyEventStore, numbers: range) -> None:
    """Append one `Ticked` per number, spread over five streams."""
    for n in numbers:
        await store.append(f"tick-{n % 5}", [NewEvent(Ticked(n=n))])


async def _caught_up(store: SqlAlchemyEventStore) -> None:
    await wait_for_projection(store, TickProjector, await store.log_head(), timeout=20)


async def _read_model(store: SqlAlchemyEventStore, table: Table) -> list[tuple[str, int, int]]:
    """The projected rows in the order they were written: (stream, version, n)."""
    query = select(table.c.stream_id, table.c.version, table.c.n).order_by(table.c.seq)
    async with store.engine.connect() as conn:
        return [(s, v, n) for s, v, n in (await conn.execute(query)).all()]


async def _workers(store: SqlAlchemyEventStore, table: Table) -> list[str]:
    """Who projected each row, in the order they were written."""
    async with store.engine.connect() as conn:
        return list((await conn.scalars(select(table.c.worker).order_by(table.c.seq))).all())


async def _whole_log(store: SqlAlchemyEventStore) -> list[RecordedEvent]:
    """The whole log, once all of it is readable (other tests' open transactions may hold
    the readable horizon back for a moment)."""
    head = await store.log_head()
    with anyio.fail_after(20):
        while True:
            log = await store.read_log(limit=100_000)
            if len(log) >= head:
                return log
            await anyio.sleep(0.01)


async def _serial_replay(store: SqlAlchemyEventStore) -> list[tuple[str, int, int]]:
    """What one worker applying the whole log in order writes."""
    log = await _whole_log(store)
    return [(r.stream_id, r.version, r.event.n) for r in log if isinstance(r.event, Ticked)]


def _leases(store: SqlAlchemyEventStore) -> PostgresLeases:
    leases = store.projection_leases()
    assert isinstance(leases, PostgresLeases)
    return leases


async def _lease_holders(store: SqlAlchemyEventStore, name: str) -> list[int]:
    """The backend pids holding the advisory lock of projector `name`."""
    query = text(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
        "AND ((classid::bigint << 32) | objid::bigint) = :key"
    )
    async with store.engine.connect() as conn:
        return list((await conn.scalars(query, {"key": _leases(store).key(name)})).all())


async def _kill_lease_session(store: SqlAlchemyEventStore, name: str) -> None:
    """Terminate the server session holding the lease, as if its connection broke."""
    [pid] = await _lease_holders(store, name)
    async with store.engine.connect() as conn:
        ended = await conn.scalar(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
    assert ended, "the lease's session did not end"


class _RecordedLeases:
    """Leases that count refusals and tell when the lease was taken."""

    def __init__(self, inner: ProjectionLeases) -> None:
        self._inner = inner
        self.refusals = 0
        self.taken = anyio.Event()
        self._refused = anyio.Event()

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[ProjectionLease | None]:
        async with self._inner.hold(name) as lease:
            if lease is None:
                self.refusals += 1
                self._refused.set()
                self._refused = anyio.Event()
            else:
                self.taken.set()
            yield lease

    async def refused(self, times: int) -> None:
        while self.refusals < times:
            await self._refused.wait()


@asynccontextmanager
async def _second_store(store: SqlAlchemyEventStore) -> AsyncIterator[SqlAlchemyEventStore]:
    """The same tables through another engine, as another process would see them."""
    engine = await reachable_postgres_engine()
    try:
        yield SqlAlchemyEventStore(engine, tables=EventStoreTables(schema=store.tables.schema))
    finally:
        await engine.dispose()


async def test_one_worker_projects_at_a_time_and_another_takes_over(
    postgres_event_store: SqlAlchemyEventStore,
) -> None:
    store_a = postgres_event_store
    table = await _with_ticks(store_a)
    worker_a = ProjectionWorker(
        store_a, [TickProjector(table, "a")], lease_retry=0.05, max_wait=0.05
    )
    async with _second_store(store_a) as store_b:
        leases_b = _RecordedLeases(store_b.projection_leases())
        worker_b = ProjectionWorker(
            store_b, [TickProjector(table, "b")], leases=leases_b, lease_retry=0.05, max_wait=0.05
        )
        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                a_running = anyio.CancelScope()

                async def run_a() -> None:
                    with a_running:
                        await worker_a.run()

                group.start_soon(run_a)
                await _tick(store_a, range(20))
                await _caught_up(store_a)
                group.start_soon(worker_b.run)
                await leases_b.refused(3)  # b keeps trying while a holds the lease
                await _tick(store_b, range(20, 40))
                await _caught_up(store_a)
                assert len(await _lease_holders(store_a, NAME)) == 1
                assert not leases_b.taken.is_set()

                a_running.cancel()  # a stops: b takes over
                await leases_b.taken.wait()
                await _tick(store_a, range(40, 60))
                await _caught_up(store_a)
                group.cancel_scope.cancel()
    assert await _workers(store_a, table) == ["a"] * 40 + ["b"] * 20
    assert await _read_model(store_a, table) == await _serial_replay(store_a)
    assert await _lease_holders(store_a, NAME) == []  # both released it


async def test_a_worker_whose_lease_connection_dies_stops_promptly(
    postgres_event_store: SqlAlchemyEventStore,
) -> None:
    store = postgres_event_store
    leases = PostgresLeases(store.engine, store.tables, check_interval=0.02)

    async def hold_until_lost() -> None:
        async with leases.hold(NAME) as lease:
            assert lease is not None
            await _kill_lease_session(store, NAME)
            await anyio.sleep_forever()  # the lease's watcher cancels this

    with anyio.fail_after(10), pytest.raises(LeaseLostError, match="connection failed"):
        await hold_until_lost()
    async with leases.hold(NAME) as again:  # free again, and can be taken again
        assert again is not None
        assert len(await _lease_holders(store, NAME)) == 1


_FENCES = [pytest.param(False, id="locking"), pytest.param(True, id="advancing")]


async def _fence(
    lease: ProjectionLease, session: EventStoreSession, at: LogPosition, advancing: bool
) -> None:
    """Fence a batch from `at`: only locking the checkpoint row, or also advancing it
    by one (as workers do, in the same statement)."""
    to = LogPosition(at.transaction_id, at.global_position + 1) if advancing else None
    assert await lease.guard(session, at, to) is advancing


async def _save_checkpoint(store: SqlAlchemyEventStore, position: LogPosition) -> None:
    async with store.session() as session:
        await session.save_checkpoint(NAME, position)
        await session.commit([])


@pytest.mark.parametrize("advancing", _FENCES)
@pytest.mark.parametrize("start", [LogPosition(), LogPosition(0, 3)], ids=["first", "later"])
async def test_a_stale_holder_cannot_write_a_batch(
    postgres_event_store: SqlAlchemyEventStore, start: LogPosition, advancing: bool
) -> None:
    store = postgres_event_store
    if start != LogPosition():
        await _save_checkpoint(store, start)
    before = await store.load_checkpoints([NAME])
    leases = PostgresLeases(store.engine, store.tables, check_interval=3600)  # unwatched
    async with leases.hold(NAME) as lease:
        assert lease is not None
        await _kill_lease_session(store, NAME)  # lost, but the holder has not noticed
        async with store.session() as session:
            with pytest.raises(LeaseLostError, match="no longer holds"):
                await _fence(lease, session, start, advancing)
    assert await store.load_checkpoints([NAME]) == before


@pytest.mark.parametrize("advancing", _FENCES)
async def test_a_batch_fails_when_another_worker_moved_the_checkpoint(
    postgres_event_store: SqlAlchemyEventStore, advancing: bool
) -> None:
    store = postgres_event_store
    async with _leases(store).hold(NAME) as lease:
        assert lease is not None
        await _save_checkpoint(store, LogPosition(0, 7))  # a worker that got there first
        for believed in (LogPosition(), LogPosition(0, 5)):
            async with store.session() as session:
                with pytest.raises(LeaseLostError, match=r"is LogPosition.*moved it"):
                    await _fence(lease, session, believed, advancing)
        async with store.session() as session:
            await _fence(lease, session, LogPosition(0, 7), advancing)  # where it is: fine
        assert await store.load_checkpoints([NAME]) == {NAME: LogPosition(0, 7)}  # rolled back
        async with store.session() as session:
            await _fence(lease, session, LogPosition(0, 7), advancing)
            await session.commit([])
    moved = LogPosition(0, 8) if advancing else LogPosition(0, 7)
    assert await store.load_checkpoints([NAME]) == {NAME: moved}


@pytest.mark.parametrize("advancing", _FENCES)
async def test_a_batch_without_the_checkpoints_table_fails_with_a_schema_error(
    postgres_event_store: SqlAlchemyEventStore, advancing: bool
) -> None:
    tables = EventStoreTables(schema=throwaway_schema())  # never created
    store = SqlAlchemyEventStore(postgres_event_store.engine, tables=tables)
    async with _leases(store).hold(NAME) as lease, store.session() as session:
        assert lease is not None
        with pytest.raises(SchemaError):
            await _fence(lease, session, LogPosition(), advancing)


@pytest.mark.parametrize(
    ("advancing", "start"),
    [
        pytest.param(False, LogPosition(), id="locking"),
        pytest.param(True, LogPosition(), id="advancing-first"),  # INSERT ... ON CONFLICT
        pytest.param(True, LogPosition(0, 3), id="advancing-later"),  # UPDATE
    ],
)
async def test_the_new_holder_waits_for_a_stale_batch_and_does_not_apply_it_again(
    postgres_event_store: SqlAlchemyEventStore, advancing: bool, start: LogPosition
) -> None:
    store = postgres_event_store
    table = await _with_ticks(store)
    if start != LogPosition():
        await _save_checkpoint(store, start)
    end = LogPosition(0, start.global_position + 1)
    stale_leases = PostgresLeases(store.engine, store.tables, check_interval=3600)
    async with _second_store(store) as store_b, stale_leases.hold(NAME) as stale:
        assert stale is not None
        async with store.session() as stale_batch:
            await _fence(stale, stale_batch, start, advancing)  # the stale batch is under way...
            await _kill_lease_session(store, NAME)  # ...when its lease is lost
            async with _leases(store_b).hold(NAME) as fresh, store_b.session() as fresh_batch:
                assert fresh is not None
                pid = await fresh_batch.connection.scalar(text("SELECT pg_backend_pid()"))

                async def fresh_guard() -> None:
                    with pytest.raises(LeaseLostError, match="moved it"):
                        await _fence(fresh, fresh_batch, start, advancing)

                async with anyio.create_task_group() as group:
                    group.start_soon(fresh_guard)
                    await _until_waiting_for_a_lock(store, pid)
                    row = {"stream_id": "s", "version": 1, "n": 1, "worker": "stale"}
                    await stale_batch.connection.execute(insert(table).values(row))
                    if not advancing:
                        await stale_batch.save_checkpoint(NAME, end)
                    await stale_batch.commit([])
    assert await store.load_checkpoints([NAME]) == {NAME: end}
    assert await _workers(store, table) == ["stale"]


class _LeaseKilledAt(TickProjector, name=NAME):
    """Has its lease's session killed while it applies event `n` (and goes on)."""

    def __init__(self, table: Table, store: SqlAlchemyEventStore, *, at: int) -> None:
        super().__init__(table, "w", stall_at=at)
        self._store = store

    async def stall(self) -> None:
        await _kill_lease_session(self._store, NAME)


async def test_a_holder_that_lost_its_lease_unnoticed_applies_no_further_batch(
    postgres_event_store: SqlAlchemyEventStore,
) -> None:
    store = postgres_event_store
    table = await _with_ticks(store)
    await _tick(store, range(1, 7))
    leases = PostgresLeases(store.engine, store.tables, check_interval=3600)  # unwatched
    projector = _LeaseKilledAt(table, store, at=2)
    worker = ProjectionWorker(store, [projector], batch_size=2, leases=leases)
    with pytest.raises(LeaseLostError, match="no longer holds"):
        await worker.catch_up()  # the second batch is refused before it writes anything
    log = await _whole_log(store)
    assert [n for *_, n in await _read_model(store, table)] == [1, 2]
    assert await store.load_checkpoints([NAME]) == {NAME: log[1].log_position}


async def _until_waiting_for_a_lock(store: SqlAlchemyEventStore, pid: int) -> None:
    query = text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid")
    with anyio.fail_after(10):
        while True:
            async with store.engine.connect() as conn:
                if await conn.scalar(query, {"pid": pid}) == "Lock":
                    return
            await anyio.sleep(0.01)


class _StallOnce(TickProjector, name=NAME):
    """Stalls at event `stall_at` the first time only (until its lease is lost)."""

    def __init__(self, table: Table, worker: str, *, stall_at: int) -> None:
        super().__init__(table, worker, stall_at=stall_at)
        self.stalled = anyio.Event()

    async def stall(self) -> None:
        if not self.stalled.is_set():
            self.stalled.set()
            await anyio.sleep_forever()


async def test_a_worker_that_loses_its_lease_mid_batch_rolls_it_back_and_takes_it_again(
    postgres_event_store: SqlAlchemyEventStore,
) -> None:
    store = postgres_event_store
    table = await _with_ticks(store)
    await _tick(store, range(1, 31))
    projector = _StallOnce(table, "w", stall_at=15)
    leases = PostgresLeases(store.engine, store.tables, check_interval=0.02)
    worker = ProjectionWorker(
        store, [projector], batch_size=10, leases=leases, lease_retry=0.05, max_wait=0.05
    )
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            group.start_soon(worker.run)
            await projector.stalled.wait()  # inside the second batch
            await _kill_lease_session(store, NAME)  # the watcher cancels the batch
            await _caught_up(store)
            group.cancel_scope.cancel()
    assert await _read_model(store, table) == await _serial_replay(store)
    assert await _lease_holders(store, NAME) == []


class _MovingCheckpoint:
    """Leases whose second guard finds the checkpoint moved on by "another worker"."""

    def __init__(self, store: SqlAlchemyEventStore, moved_to: LogPosition) -> None:
        self._inner = _leases(store)
        self._store = store
        self._moved_to = moved_to
        self.guards: list[LogPosition] = []

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[ProjectionLease | None]:
        async with self._inner.hold(name) as lease:
            yield None if lease is None else _Spied(lease, self)

    async def before_guard(self, checkpoint: LogPosition) -> None:
        self.guards.append(checkpoint)
        if len(self.guards) == 2:
            async with self._store.session() as other:
                await other.save_checkpoint(NAME, self._moved_to)
                await other.commit([])


class _Spied:
    def __init__(self, lease: ProjectionLease, leases: _MovingCheckpoint) -> None:
        self._lease = lease
        self._leases = leases

    @property
    def name(self) -> str:
        return self._lease.name

    async def guard(
        self,
        session: EventStoreSession,
        checkpoint: LogPosition,
        advance_to: LogPosition | None = None,
    ) -> bool:
        await self._leases.before_guard(checkpoint)
        return await self._lease.guard(session, checkpoint, advance_to)


async def test_a_worker_resumes_from_where_another_worker_moved_the_checkpoint(
    postgres_event_store: SqlAlchemyEventStore,
) -> None:
    store = postgres_event_store
    table = await _with_ticks(store)
    await _tick(store, range(1, 11))
    log = await _whole_log(store)
    leases = _MovingCheckpoint(store, moved_to=log[5].log_position)  # "someone" did 4..6
    worker = ProjectionWorker(
        store, [TickProjector(table, "w")], batch_size=3, leases=leases, lease_retry=0.01
    )
    with pytest.raises(LeaseLostError, match="moved it"):
        await worker.catch_up()  # the second batch (4..6) fails, nothing of it written
    assert [n for *_, n in await _read_model(store, table)] == [1, 2, 3]
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            group.start_soon(worker.run)  # starts again from the moved checkpoint
            await _caught_up(store)
            group.cancel_scope.cancel()
    assert [n for *_, n in await _read_model(store, table)] == [1, 2, 3, 7, 8, 9, 10]
    positions = [r.log_position for r in log]
    assert leases.guards == [LogPosition(), positions[2], positions[5], positions[8]]


class _WorkerProcess:
    """A worker subprocess (`_failover_worker.py`) and the lines it printed so far."""

    def __init__(self, process: Process, stderr: Path) -> None:
        self.process = process
        self.stderr = stderr
        self.lines: list[str] = []
        self._partial = ""

    async def printed(self, line: str) -> None:
        """Wait until the worker has printed `line`."""
        assert self.process.stdout is not None
        while line not in self.lines:
            try:
                chunk = await self.process.stdout.receive()
            except anyio.EndOfStream:
                raise AssertionError(
                    f"the worker exited before printing {line!r}; it printed {self.lines[-5:]}, "
                    f"and on stderr: {self.stderr.read_text()[-2000:]}"
                ) from None
            *complete, self._partial = (self._partial + chunk.decode()).split("\n")
            self.lines.extend(complete)


Spawn = Callable[..., Awaitable[_WorkerProcess]]


@asynccontextmanager
async def _worker_processes(schema: str, tmp_path: Path) -> AsyncIterator[Spawn]:
    """Start worker processes on demand; kill whatever still runs at the end."""
    started: list[_WorkerProcess] = []

    async def spawn(label: str, *, stall_at: int | None = None) -> _WorkerProcess:
        env = {**os.environ, "FAILOVER_URL": postgres_url(), "FAILOVER_SCHEMA": schema}
        env["FAILOVER_LABEL"] = label
        if stall_at is not None:
            env["FAILOVER_STALL_AT"] = str(stall_at)
        stderr = tmp_path / f"{label}.stderr"
        with stderr.open("wb") as err:
            command = [sys.executable, str(WORKER_SCRIPT)]
            process = await anyio.open_process(command, env=env, stdin=DEVNULL, stderr=err)
        started.append(_WorkerProcess(process, stderr))
        return started[-1]

    try:
        yield spawn
    finally:
        with anyio.CancelScope(shield=True):
            for worker in started:
                if worker.process.returncode is None:
                    worker.process.kill()
                await worker.process.aclose()


@pytest.mark.slow
async def test_a_worker_killed_mid_batch_is_replaced_and_the_read_model_equals_a_serial_replay(
    postgres_event_store: SqlAlchemyEventStore, tmp_path: Path
) -> None:
    store = postgres_event_store
    assert store.tables.schema is not None
    table = await _with_ticks(store)
    await _tick(store, range(1, 201))
    log = await _whole_log(store)  # readable before the workers start: they never wait
    stall_at = 5 * BATCH_SIZE + 6  # the sixth event of the sixth batch
    with anyio.fail_after(30):
        async with _worker_processes(store.tables.schema, tmp_path) as spawn:
            first = await spawn("first", stall_at=stall_at)
            await first.printed("stalled")  # six events of its sixth batch applied, uncommitted
            second = await spawn("second")
            await second.printed("lease refused")  # waiting for the lease
            at_kill = await store.load_checkpoints([NAME])

            first.process.send_signal(signal.SIGKILL)
            assert await first.process.wait() == -signal.SIGKILL
            await second.printed("lease taken")
            await _caught_up(store)
    assert at_kill == {NAME: log[5 * BATCH_SIZE - 1].log_position}  # five batches committed
    assert f"apply {stall_at}" in first.lines
    replay = await _serial_replay(store)
    assert len(replay) == 200
    assert await _read_model(store, table) == replay  # nothing twice, nothing missing
    assert await _workers(store, table) == ["first"] * 5 * BATCH_SIZE + ["second"] * 150
