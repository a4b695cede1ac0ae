"""A registration context per test, on a temporary SQLite file, then a throwaway PG schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from eventcore.testing.pytest_plugin import reachable_postgres_engine, throwaway_schema
from tests.examples.registration.world import Clock, World
from university.registration import Registration, bootstrap


@pytest.fixture
def clock() -> Clock:
    """The time of the decisions: the term's reference moment, movable by tests."""
    return Clock()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def registration(
    request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> AsyncIterator[Registration]:
    """The context on a temporary SQLite file, then in a throwaway PostgreSQL schema."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'registration.db'}"
        async with await bootstrap(url, clock=clock) as context:
            yield context
        return
    engine = await reachable_postgres_engine()
    schema = throwaway_schema()
    try:
        yield await bootstrap(engine, schema=schema, clock=clock)
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()


@pytest.fixture
async def world(registration: Registration, clock: Clock) -> World:
    """A scheduled term with a small catalogue, and a few admitted students."""
    world = World(registration, clock)
    await world.set_up()
    return world
