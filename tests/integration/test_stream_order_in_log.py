"""On PostgreSQL the log keeps each stream in version order, even across long transactions.

The log is ordered by transaction id. A unit of work whose transaction took its id early
(it wrote something first) and that appends to a stream after a younger transaction
did would put its event before the stream's previous one. Such an append is refused as
a conflict; retried, it runs in a new (younger) transaction.
"""

from __future__ import annotations

import anyio
import pytest
from sqlalchemy import text

from eventcore import (
    ConcurrencyError,
    DomainEvent,
    NewEvent,
    SqlAlchemyEventStore,
    StreamAppend,
    UnitOfWork,
    retry_on_conflict,
)

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


class Noted(DomainEvent, type_name="test_stream_order_in_log.Noted"):
    """Something was noted."""

    text: str


async def _versions_in_log_order(
    store: SqlAlchemyEventStore, stream_id: str, count: int = 2
) -> list[int]:
    """The stream's versions in log order, once `count` of them are readable.

    The log shows only what lies below the oldest transaction still open on the whole
    server (another program's included), so wait for it to pass the appends.
    """
    with anyio.fail_after(60):
        while True:
            versions = [r.version for r in await store.read_log() if r.stream_id == stream_id]
            if len(versions) >= count:
                return versions
            await anyio.sleep(0.01)


async def test_an_older_transaction_cannot_append_after_a_younger_one(
    postgres_event_store: SqlAlchemyEventStore,
) -> None:
    store = postgres_event_store
    async with store.session() as old:
        # The old transaction takes its id before anyone appends to the stream.
        await old.connection.execute(text("SELECT pg_current_xact_id()"))
        await store.append("notes", [NewEvent.of(Noted(text="first"))])  # a younger one
        late = StreamAppend("notes", [NewEvent.of(Noted(text="second"))], expected_version=1)
        with pytest.raises(ConcurrencyError):
            await old.commit([late])
    assert await store.stream_version("notes") == 1

    async def retry() -> None:
        async with store.session() as fresh:
            await fresh.commit([late])

    await retry_on_conflict(retry)
    assert await _versions_in_log_order(store, "notes") == [1, 2]


async def test_appends_with_any_keep_the_order_too(
    postgres_event_store: SqlAlchemyEventStore,
) -> None:
    store = postgres_event_store
    async with UnitOfWork(store) as uow:
        await uow.connection.execute(text("SELECT pg_current_xact_id()"))
        await store.append("notes", [NewEvent.of(Noted(text="first"))])
        with pytest.raises(ConcurrencyError):
            await uow.session.commit([StreamAppend("notes", [NewEvent.of(Noted(text="x"))])])
    await store.append("notes", [NewEvent.of(Noted(text="second"))])
    assert await _versions_in_log_order(store, "notes") == [1, 2]
