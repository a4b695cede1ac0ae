"""Catching up "to the head as of now", and seeing when a catch-up stopped short.

On PostgreSQL the log is read below the oldest transaction still open on the server: a
transaction that wrote and stays open holds back every reader of every store there.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from eventcore import (
    CatchUpResult,
    CatchUpTimeoutError,
    DomainEvent,
    EventStore,
    LogPosition,
    NewEvent,
    ProjectionContext,
    ProjectionWorker,
    Projector,
    SqlAlchemyEventStore,
    StreamAppend,
    postgres_engine,
    projects,
    wait_until_readable,
)
from eventcore.testing.pytest_plugin import postgres_url

pytestmark = pytest.mark.anyio

PATIENCE = 30.0  # other programs' transactions on a shared server hold the log back too


class Noted(DomainEvent, type_name="test_catch_up_to_head.Noted"):
    """Something was noted."""

    text: str


class Notes(Projector, name="test_catch_up_to_head.notes"):
    """Keeps the notes in memory."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    @projects
    async def _noted(self, event: Noted, context: ProjectionContext) -> None:
        self.seen.append(event.text)


def _new(text: str) -> NewEvent:
    return NewEvent.of(Noted(text=text))


@pytest.fixture
async def blocker() -> AsyncIterator[tuple[AsyncConnection, str]]:
    """A connection of its own, in a transaction that holds a transaction id open."""
    name = f"eventcore-blocker-{uuid.uuid4().hex[:8]}"
    engine: AsyncEngine = postgres_engine(
        postgres_url(), connect_args={"server_settings": {"application_name": name}}
    )
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_current_xact_id()"))  # it "wrote"
            yield conn, name
            await conn.rollback()
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_catch_up_says_when_an_open_transaction_held_it_back(
    postgres_event_store: SqlAlchemyEventStore, blocker: tuple[AsyncConnection, str]
) -> None:
    store = postgres_event_store
    connection, _ = blocker
    await store.append("notes-1", [_new("a")])  # committed after the blocker began
    notes = Notes()
    worker = ProjectionWorker(store, [notes])

    result = await worker.catch_up()
    assert isinstance(result, CatchUpResult)
    assert result == 0
    assert not result.complete
    assert notes.seen == []
    assert result.held_back_by is not None
    assert "server process" in result.held_back_by

    with pytest.raises(CatchUpTimeoutError, match="not become readable") as timed_out:
        await worker.catch_up_to_head(timeout=0.3)
    assert "held back by" in str(timed_out.value)
    with pytest.raises(CatchUpTimeoutError):
        await wait_until_readable(store, timeout=0.1)

    await connection.rollback()  # the transaction ends: the log moves on
    result = await worker.catch_up_to_head(timeout=PATIENCE)
    assert result == 1
    assert result.complete
    assert result.held_back_by is None
    assert notes.seen == ["a"]


@pytest.mark.postgres
async def test_the_blocking_transaction_is_named(
    postgres_event_store: SqlAlchemyEventStore, blocker: tuple[AsyncConnection, str]
) -> None:
    _, name = blocker
    described = await postgres_event_store.blocking_transaction()
    assert described is not None
    # The oldest open transaction on the server: ours, unless another program's is older.
    assert name in described or "server process" in described


@pytest.mark.postgres
async def test_the_log_ends_at_the_last_commit_not_at_the_highest_position(
    postgres_event_store: SqlAlchemyEventStore,
) -> None:
    store = postgres_event_store
    async with store.session() as first:
        # The first transaction takes its id, then a second one commits an event...
        await first.connection.execute(text("SELECT pg_current_xact_id()"))
        later = await store.append("notes-b", [_new("b")])
        # ...before the first appends (a higher global position, an older transaction).
        results = await first.commit([StreamAppend("notes-a", [_new("a")])])
    assert results[0].global_positions[0] > later.global_positions[0]
    head = await store.log_position_of(await store.log_head())
    end = await store.log_end()
    assert head is not None
    assert end > head
    assert end.global_position == later.global_positions[0]
    assert await wait_until_readable(store, timeout=PATIENCE) == end


async def test_elsewhere_catch_up_is_complete_and_still_an_int(any_store: EventStore) -> None:
    await any_store.append("notes-1", [_new("a"), _new("b")])
    worker = ProjectionWorker(any_store, [Notes()])
    result = await worker.catch_up_to_head(timeout=PATIENCE)
    assert result == 2
    assert result.applied == 2
    assert result.complete
    again = await worker.catch_up()
    assert again == 0
    assert repr(again) == "CatchUpResult(0, complete=True)"
    assert f"{again} events" == str(again) + " events" == "0 events"
    end = await wait_until_readable(any_store, 2, timeout=PATIENCE)
    assert end.global_position == 2
    assert await wait_until_readable(any_store, LogPosition(), timeout=0) == LogPosition()
