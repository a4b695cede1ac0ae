"""Personal data in messages at rest: outbox rows and inbox dead letters, on SQL stores."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import pytest
from sqlalchemy import text

from eventcore import (
    Aggregate,
    DataSubjectId,
    EventStoreTables,
    IntegrationEvent,
    IntegrationMapping,
    KeyProvider,
    LocalKeyProvider,
    Message,
    PersonalData,
    PersonalDataError,
    RecordedEvent,
    SqlAlchemyEventStore,
    UnitOfWork,
    apply,
    message_for,
    sqlite_engine,
    translates,
)
from eventcore._messaging._outbox import LANES
from eventcore.testing._personal_support import (
    EMAIL,
    FORGOTTEN,
    NAME,
    ContractEnrolled,
    default_raw_text,
    enrolled,
    fresh_id,
)
from eventcore.testing.pytest_plugin import reachable_postgres_engine, throwaway_schema

pytestmark = pytest.mark.anyio


class PersonEnrolled(IntegrationEvent, type_name="tests.pii.PersonEnrolled"):
    """What the enrolment tells other contexts, personal data included."""

    person_id: Annotated[str, DataSubjectId()]
    name: Annotated[str, PersonalData(replacement=FORGOTTEN)]
    email: Annotated[str | None, PersonalData()]


class Enrolments(IntegrationMapping):
    """Each enrolment becomes a `PersonEnrolled`."""

    @translates
    def _enrolled(self, event: ContractEnrolled, recorded: RecordedEvent) -> PersonEnrolled:
        return PersonEnrolled(person_id=event.person_id, name=event.name, email=event.email)


Make = Callable[[KeyProvider | None], Awaitable[SqlAlchemyEventStore]]


@pytest.fixture(params=["sqlite", "postgres"])
async def make(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Make]:
    """Makes SQL stores (SQLite or PostgreSQL) on one fresh database."""
    stores: list[SqlAlchemyEventStore] = []
    if request.param == "sqlite":
        engine = sqlite_engine(tmp_path / "events.db")
        tables = EventStoreTables()
        schema = None
    else:
        engine = await reachable_postgres_engine()
        schema = throwaway_schema()
        tables = EventStoreTables(schema=schema)

    async def new(keys: KeyProvider | None) -> SqlAlchemyEventStore:
        store = SqlAlchemyEventStore(engine, tables=tables, key_provider=keys)
        await store.create_schema()
        stores.append(store)
        return store

    yield new
    for store in stores:
        await store.close()
    if schema is not None:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    await engine.dispose()


def _keys() -> LocalKeyProvider:
    return LocalKeyProvider.from_text(LocalKeyProvider.generate("kek-1"))


async def _claim_all(store: SqlAlchemyEventStore) -> list[Message]:
    entries = await store.outbox.claim("relay-1", range(LANES), 100, timedelta(seconds=30))
    return [entry.message for entry in entries]


def _names(messages: list[Message]) -> list[str]:
    return [json.loads(m.payload)["name"] for m in messages]


async def test_outbox_rows_are_sealed_and_published_opened(make: Make) -> None:
    store = await make(_keys())
    person = fresh_id("p")
    async with UnitOfWork(store, mappings=[Enrolments()]) as uow:
        uow.publish(PersonEnrolled(person_id=person, name=NAME, email=EMAIL), key=person)
        await uow.commit()
    await _mapped(store, person)
    raw = await default_raw_text(store)
    assert NAME not in raw
    assert EMAIL not in raw
    messages = await _claim_all(store)
    assert _names(messages) == [NAME, NAME]
    assert json.loads(messages[0].payload)["email"] == EMAIL


class Person(Aggregate, aggregate_type="tests.pii.Person"):
    """A person who enrols (no state)."""

    @apply
    def _enrolled(self, event: ContractEnrolled) -> None:
        pass


async def _mapped(store: SqlAlchemyEventStore, person: str) -> None:
    """A domain event the mapping translates: its message goes to the outbox."""
    async with UnitOfWork(store, mappings=[Enrolments()]) as uow:
        aggregate = Person(person)
        aggregate.record(enrolled(person).event)
        await uow.repository(Person).add(aggregate)
        await uow.commit()


async def test_unsent_messages_of_a_forgotten_subject_go_out_shredded(make: Make) -> None:
    store = await make(_keys())
    person, other = fresh_id("p"), fresh_id("q")
    await _mapped(store, person)
    await _mapped(store, other)
    await store.personal_data.forget(person, actor="dpo", reason="erasure")
    messages = await _claim_all(store)
    by_person = {json.loads(m.payload)["person_id"]: json.loads(m.payload) for m in messages}
    assert by_person[person]["name"] == FORGOTTEN
    assert by_person[person]["email"] is None
    assert by_person[other]["name"] == NAME


async def test_inbox_dead_letters_are_sealed(make: Make) -> None:
    store = await make(_keys())
    person = fresh_id("p")
    message = message_for(PersonEnrolled(person_id=person, name=NAME, email=EMAIL), key=person)
    attempts, dead = await store.inbox.record_failure("consumer", message, "boom", 1)
    assert (attempts, dead) == (1, True)
    assert NAME not in await default_raw_text(store)
    [letter] = await store.inbox.dead_letters()
    assert json.loads(letter.message.payload)["name"] == NAME
    await store.personal_data.forget(person, actor="dpo", reason="erasure")
    [letter] = await store.inbox.dead_letters()
    assert json.loads(letter.message.payload)["name"] == FORGOTTEN


async def test_without_keys_the_outbox_refuses_and_the_inbox_shreds(make: Make) -> None:
    store = await make(None)
    person = fresh_id("p")
    async with UnitOfWork(store) as uow:
        uow.publish(PersonEnrolled(person_id=person, name=NAME, email=EMAIL), key=person)
        with pytest.raises(PersonalDataError, match="key provider"):
            await uow.commit()
    assert (await store.outbox.status()).pending == 0
    message = message_for(PersonEnrolled(person_id=person, name=NAME, email=EMAIL), key=person)
    await store.inbox.record_failure("consumer", message, "boom", 1)
    [letter] = await store.inbox.dead_letters()
    assert json.loads(letter.message.payload)["name"] == FORGOTTEN
    assert NAME not in await default_raw_text(store)
