"""Shared fixtures: one event store per backend, each fresh for every test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eventcore import EventStore, InMemoryEventStore, SqlAlchemyEventStore, sqlite_engine


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """asyncpg is asyncio-only, so every async test runs on asyncio."""
    return "asyncio"


@pytest.fixture
def memory_store() -> InMemoryEventStore:
    """A fresh in-memory event store."""
    return InMemoryEventStore()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqlAlchemyEventStore]:
    """A fresh SQLite event store in a temporary file."""
    engine = sqlite_engine(tmp_path / "events.db")
    store = SqlAlchemyEventStore(engine)
    await store.create_schema()
    yield store
    await engine.dispose()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest) -> EventStore:
    """Each backend in turn: in-memory, SQLite and PostgreSQL."""
    name = {"memory": "memory_store", "sqlite": "sqlite_store", "postgres": "postgres_event_store"}
    store: EventStore = request.getfixturevalue(name[request.param])
    return store
