"""The event store contract, run against `SqlAlchemyEventStore` on PostgreSQL (asyncpg)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from eventcore import EventStoreTables, SqlAlchemyEventStore
from eventcore.testing import EventStoreContract
from eventcore.testing.pytest_plugin import reachable_postgres_engine, throwaway_schema

PAYLOAD_LIMIT = 64 * 1024


@pytest.mark.postgres
class TestPostgresEventStore(EventStoreContract):
    """Every contract test in a throwaway PostgreSQL schema (raw rows inserted directly)."""

    max_payload_bytes = PAYLOAD_LIMIT

    @pytest.fixture
    async def store(self) -> AsyncIterator[SqlAlchemyEventStore]:
        """A PostgreSQL store in its own schema, dropped after the test."""
        engine = await reachable_postgres_engine()
        schema = throwaway_schema()
        tables = EventStoreTables(schema=schema)
        store = SqlAlchemyEventStore(engine, tables=tables, max_payload_bytes=PAYLOAD_LIMIT)
        try:
            await store.create_schema()
            yield store
        finally:
            await store.close()
            async with engine.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            await engine.dispose()
