"""pytest fixtures for eventcore users: a PostgreSQL event store in a throwaway schema.

Enable it in your `conftest.py` with `pytest_plugins = ["eventcore.testing.pytest_plugin"]`
(or `-p eventcore.testing.pytest_plugin`). Tests using these fixtures need the anyio
pytest plugin (`@pytest.mark.anyio`).

The server comes from `EVENTCORE_TEST_POSTGRES_URL` (default
`postgresql+asyncpg://postgres@127.0.0.1:5432/test`). When it cannot be reached the
tests are skipped, except under `CI=true`, where they fail: CI must never skip them
silently.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from eventcore._sqlalchemy._engines import postgres_engine
from eventcore._sqlalchemy._schema import EventStoreTables
from eventcore._sqlalchemy._store import SqlAlchemyEventStore

__all__ = ["POSTGRES_URL_ENV", "postgres_event_store", "postgres_url", "throwaway_schema"]

POSTGRES_URL_ENV = "EVENTCORE_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def postgres_url() -> str:
    """The PostgreSQL URL tests use (`EVENTCORE_TEST_POSTGRES_URL` or the local default)."""
    return os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL)


async def reachable_postgres_engine() -> AsyncEngine:
    """An engine for `postgres_url()`, or skip (fail under `CI=true`) if unreachable."""
    engine = postgres_engine(postgres_url(), pool_size=5, max_overflow=60)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as error:
        await engine.dispose()
        message = f"PostgreSQL at {postgres_url()} is unreachable: {error!r}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{message} (CI=true: PostgreSQL tests must run)")
        pytest.skip(message)
    return engine


def throwaway_schema() -> str:
    """A fresh, unique PostgreSQL schema name for one test."""
    return f"ec_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def postgres_event_store() -> AsyncIterator[SqlAlchemyEventStore]:
    """A `SqlAlchemyEventStore` on PostgreSQL in its own schema, dropped afterwards."""
    engine = await reachable_postgres_engine()
    schema = throwaway_schema()
    store = SqlAlchemyEventStore(engine, tables=EventStoreTables(schema=schema))
    try:
        await store.create_schema()
        yield store
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()
