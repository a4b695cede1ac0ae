"""Many writers on one stream: optimistic concurrency never loses or duplicates an event."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio
import pytest
from sqlalchemy import text

from eventcore import (
    AppendResult,
    DomainEvent,
    EventStoreTables,
    ExpectedVersion,
    NewEvent,
    SqlAlchemyEventStore,
    WrongExpectedVersionError,
    postgres_engine,
    retry_on_conflict,
)
from eventcore.testing.pytest_plugin import (
    postgres_url,
    reachable_postgres_engine,
    throwaway_schema,
)

pytestmark = pytest.mark.anyio

WRITERS = 50
POOL = 10
STREAM = "hot-stream"


class Wrote(DomainEvent, type_name="test_concurrency.Wrote"):
    """One writer's event."""

    writer: int


@pytest.fixture
async def postgres_store() -> AsyncIterator[SqlAlchemyEventStore]:
    """PostgreSQL in a throwaway schema, with at most `POOL` connections.

    The writers (tasks) outnumber the connections, so they queue for the pool and
    race on the server, without exhausting a shared server's connection slots.
    """
    probe = await reachable_postgres_engine()  # skips (or fails under CI) if unreachable
    await probe.dispose()
    engine = postgres_engine(postgres_url(), pool_size=POOL, max_overflow=0, pool_timeout=120)
    schema = throwaway_schema()
    store = SqlAlchemyEventStore(engine, tables=EventStoreTables(schema=schema))
    try:
        await store.create_schema()
        yield store
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_store(request: pytest.FixtureRequest) -> SqlAlchemyEventStore:
    """SQLite (a file) and PostgreSQL."""
    fixture = {"sqlite": "sqlite_store", "postgres": "postgres_store"}[request.param]
    store: SqlAlchemyEventStore = request.getfixturevalue(fixture)
    return store


@dataclass
class Outcomes:
    """What each writer got."""

    won: dict[int, tuple[uuid.UUID, AppendResult]] = field(default_factory=dict)
    lost: dict[int, tuple[int, WrongExpectedVersionError]] = field(default_factory=dict)
    """Each loser's expected version and error."""


async def _assert_stream_is(store: SqlAlchemyEventStore, ids: list[uuid.UUID]) -> None:
    """The stream holds exactly `ids`, in this order, at versions 1..n."""
    recorded = await store.read_stream(STREAM)
    assert [r.event_id for r in recorded] == ids
    assert [r.version for r in recorded] == list(range(1, len(ids) + 1))
    assert await store.stream_version(STREAM) == len(ids)


async def _race(store: SqlAlchemyEventStore, *, read_together: bool) -> Outcomes:
    """Each writer reads the stream's version, then appends one event expecting it.

    With `read_together`, every writer has read before any appends.
    """
    outcomes = Outcomes()
    all_read = anyio.Event()
    reads = 0

    async def writer(n: int) -> None:
        nonlocal reads
        recorded = await store.read_stream(STREAM, backwards=True, limit=1)
        expected = recorded[0].version if recorded else 0
        new = NewEvent.of(Wrote(writer=n))
        reads += 1
        if reads == WRITERS:
            all_read.set()
        if read_together:
            await all_read.wait()
        try:
            result = await store.append(STREAM, [new], expected_version=expected)
        except WrongExpectedVersionError as error:
            outcomes.lost[n] = (expected, error)
        else:
            assert result.next_expected_version == expected + 1
            outcomes.won[n] = (new.event_id, result)

    async with anyio.create_task_group() as tg:
        for n in range(WRITERS):
            tg.start_soon(writer, n)
    return outcomes


async def _assert_one_winner_per_version(store: SqlAlchemyEventStore, outcomes: Outcomes) -> None:
    assert len(outcomes.won) + len(outcomes.lost) == WRITERS
    for expected, error in outcomes.lost.values():
        assert (error.stream_id, error.expected) == (STREAM, expected)
        assert error.actual > expected
    by_version = {r.next_expected_version: event_id for event_id, r in outcomes.won.values()}
    assert len(by_version) == len(outcomes.won)  # one winner per version
    assert sorted(by_version) == list(range(1, len(by_version) + 1))
    await _assert_stream_is(store, [by_version[v] for v in sorted(by_version)])
    recorded = await store.read_stream(STREAM)
    assert {r.event.writer for r in recorded if isinstance(r.event, Wrote)} == set(outcomes.won)


async def test_writers_that_read_together_have_one_winner(
    sql_store: SqlAlchemyEventStore,
) -> None:
    outcomes = await _race(sql_store, read_together=True)
    assert len(outcomes.won) == 1
    assert len(outcomes.lost) == WRITERS - 1
    assert {error.actual for _, error in outcomes.lost.values()} == {1}
    await _assert_one_winner_per_version(sql_store, outcomes)


async def test_interleaved_writers_have_one_winner_per_version(
    sql_store: SqlAlchemyEventStore,
) -> None:
    outcomes = await _race(sql_store, read_together=False)
    assert outcomes.won
    await _assert_one_winner_per_version(sql_store, outcomes)


@pytest.mark.slow
async def test_writers_retrying_on_conflict_all_land_once(sql_store: SqlAlchemyEventStore) -> None:
    attempts: dict[int, int] = {}
    ids: dict[int, uuid.UUID] = {}

    async def writer(n: int) -> None:
        new = NewEvent.of(Wrote(writer=n))
        ids[n] = new.event_id

        async def attempt() -> AppendResult:
            attempts[n] = attempts.get(n, 0) + 1
            expected = await sql_store.stream_version(STREAM)
            return await sql_store.append(STREAM, [new], expected_version=expected)

        result = await retry_on_conflict(attempt, attempts=1000)
        assert not result.already_stored

    async with anyio.create_task_group() as tg:
        for n in range(WRITERS):
            tg.start_soon(writer, n)

    recorded = await sql_store.read_stream(STREAM)
    assert len(recorded) == WRITERS
    assert {r.event_id for r in recorded} == set(ids.values())
    assert [r.version for r in recorded] == list(range(1, WRITERS + 1))
    assert sum(attempts.values()) > WRITERS  # some writers did have to retry


@pytest.mark.postgres
async def test_concurrent_any_appends_all_land_contiguously(
    postgres_store: SqlAlchemyEventStore,
) -> None:
    store = postgres_store
    batches: dict[int, list[NewEvent]] = {
        n: [NewEvent.of(Wrote(writer=n)) for _ in range(2)] for n in range(WRITERS)
    }
    results: dict[int, AppendResult] = {}

    async def writer(n: int) -> None:
        results[n] = await store.append(STREAM, batches[n], expected_version=ExpectedVersion.ANY)

    async with anyio.create_task_group() as tg:
        for n in batches:
            tg.start_soon(writer, n)

    recorded = await store.read_stream(STREAM)
    assert [r.version for r in recorded] == list(range(1, 2 * WRITERS + 1))
    assert len({r.event_id for r in recorded}) == 2 * WRITERS
    by_id = {r.event_id: r for r in recorded}
    for n, batch in batches.items():
        first, second = (by_id[e.event_id] for e in batch)
        assert second.version == first.version + 1  # one append's events stay together
        assert results[n].next_expected_version == second.version
        assert results[n].global_positions == (first.global_position, second.global_position)
