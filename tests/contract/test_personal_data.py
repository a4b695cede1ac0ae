"""The personal data contract on every backend: in memory, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from eventcore import (
    EventStore,
    EventStoreTables,
    InMemoryEventStore,
    KeyProvider,
    SqlAlchemyEventStore,
    sqlite_engine,
)
from eventcore.testing import PersonalDataContract, StoreFactory
from eventcore.testing.pytest_plugin import reachable_postgres_engine, throwaway_schema


class TestInMemoryPersonalData(PersonalDataContract):
    """Each store is a new in-memory store (they share nothing)."""

    @pytest.fixture
    async def make_store(self) -> StoreFactory:
        """In-memory stores."""

        async def make(keys: KeyProvider | None) -> EventStore:
            return InMemoryEventStore(key_provider=keys)

        return make


class TestSqlitePersonalData(PersonalDataContract):
    """Every store of a test on one SQLite file."""

    @pytest.fixture
    async def make_store(self, tmp_path: Path) -> AsyncIterator[StoreFactory]:
        """SQLite stores on one temporary file."""
        engine = sqlite_engine(tmp_path / "events.db")
        stores: list[SqlAlchemyEventStore] = []

        async def make(keys: KeyProvider | None) -> EventStore:
            store = SqlAlchemyEventStore(engine, key_provider=keys)
            await store.create_schema()
            stores.append(store)
            return store

        yield make
        for store in stores:
            await store.close()
        await engine.dispose()


@pytest.mark.postgres
class TestPostgresPersonalData(PersonalDataContract):
    """Every store of a test in one throwaway PostgreSQL schema."""

    @pytest.fixture
    async def make_store(self) -> AsyncIterator[StoreFactory]:
        """PostgreSQL stores in one schema, dropped afterwards."""
        engine = await reachable_postgres_engine()
        schema = throwaway_schema()
        stores: list[SqlAlchemyEventStore] = []

        async def make(keys: KeyProvider | None) -> EventStore:
            store = SqlAlchemyEventStore(
                engine, tables=EventStoreTables(schema=schema), key_provider=keys
            )
            await store.create_schema()
            stores.append(store)
            return store

        try:
            yield make
        finally:
            for store in stores:
                await store.close()
            async with engine.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            await engine.dispose()
