"""Forgetting races appends from other processes (stores with their own key caches).

On PostgreSQL, for real: whatever the interleaving, once a forgetting has committed no
event of the subject can be read, no key of the subject exists (none is created after
it), and nothing is stored in clear text; and two writers creating a subject's first
key at once end up sharing one, so no event is left sealed with a key that was lost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
from sqlalchemy import text

from eventcore import EventStoreTables, LocalKeyProvider, SqlAlchemyEventStore
from eventcore.testing._personal_support import (
    EMAIL,
    FORGOTTEN,
    NAME,
    PHONE,
    ContractEnrolled,
    default_raw_text,
    enrolled,
    fresh_id,
)
from eventcore.testing.pytest_plugin import reachable_postgres_engine, throwaway_schema

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

KEYS = LocalKeyProvider.generate("kek-1")


@pytest.fixture
async def stores() -> AsyncIterator[list[SqlAlchemyEventStore]]:
    """Three stores on one schema, as three processes would have: writer, forgetter,
    and a reader that has cached nothing."""
    engine = await reachable_postgres_engine()
    schema = throwaway_schema()
    made = [
        SqlAlchemyEventStore(
            engine,
            tables=EventStoreTables(schema=schema),
            key_provider=LocalKeyProvider.from_text(KEYS),
        )
        for _ in range(3)
    ]
    await made[0].create_schema()
    try:
        yield made
    finally:
        for store in made:
            await store.close()
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()


async def _events_of(store: SqlAlchemyEventStore, person: str) -> list[ContractEnrolled]:
    found = []
    async for recorded in store.read_all():
        event = recorded.event
        if isinstance(event, ContractEnrolled) and event.person_id == person:
            found.append(event)
    return found


async def test_appends_with_a_cached_key_while_another_process_forgets(
    stores: list[SqlAlchemyEventStore],
) -> None:
    writer, forgetter, reader = stores
    person = fresh_id("p")
    await writer.append(fresh_id("s"), [enrolled(person)])  # the writer caches the key
    written = 0

    async def write(stream: str) -> None:
        nonlocal written
        for _ in range(10):
            await writer.append(stream, [enrolled(person)])
            written += 1

    async with anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(write, fresh_id("s"))
        await anyio.sleep(0.01)
        told = await forgetter.personal_data.forget(person, actor="dpo", reason="race")
    assert told is not None
    assert written == 80
    events = await _events_of(reader, person)
    assert len(events) == 81
    assert {(e.name, e.email, e.phone) for e in events} == {(FORGOTTEN, None, "")}
    assert not await reader.personal_data.has_keys(person)
    raw = await default_raw_text(reader)
    assert NAME not in raw
    assert EMAIL not in raw
    assert PHONE not in raw


async def test_first_keys_racing_their_forgetting_never_outlive_it(
    stores: list[SqlAlchemyEventStore],
) -> None:
    writer, forgetter, reader = stores
    people = [fresh_id(f"p{i}") for i in range(30)]

    async def first_append(person: str) -> None:
        await writer.append(fresh_id("s"), [enrolled(person)])

    async def forget(person: str) -> None:
        await forgetter.personal_data.forget(person, actor="dpo", reason="race")

    async with anyio.create_task_group() as group:
        for person in people:
            group.start_soon(first_append, person)
            group.start_soon(forget, person)
    for person in people:
        assert not await reader.personal_data.has_keys(person), person
        [event] = await _events_of(reader, person)
        assert event.name == FORGOTTEN
    assert NAME not in await default_raw_text(reader)


async def test_two_processes_creating_one_subjects_first_key_share_it(
    stores: list[SqlAlchemyEventStore],
) -> None:
    first, second, reader = stores
    people = [fresh_id(f"p{i}") for i in range(20)]
    async with anyio.create_task_group() as group:
        for person in people:
            for store in (first, second):
                group.start_soon(store.append, fresh_id("s"), [enrolled(person)])
    for person in people:
        events = await _events_of(reader, person)
        assert [e.name for e in events] == [NAME, NAME]
        rows = await reader.personal_data.status(person)
        assert sorted(row.group for row in rows if row.usable) == ["", "contact"]
