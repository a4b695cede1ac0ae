"""Terminating a store's server sessions (`pg_terminate_backend`), for connection-loss tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from eventcore import EventStoreTables, SqlAlchemyEventStore, postgres_engine
from eventcore.testing.pytest_plugin import postgres_url, throwaway_schema

__all__ = ["kill_sessions", "new_application_name", "tagged_store"]


def new_application_name() -> str:
    """A unique PostgreSQL `application_name` that tells one store's sessions apart."""
    return f"eventcore-lost-{uuid.uuid4().hex[:8]}"


@asynccontextmanager
async def tagged_store(
    admin: AsyncEngine, name: str, **engine_options: Any
) -> AsyncIterator[SqlAlchemyEventStore]:
    """A PostgreSQL store in a throwaway schema, whose sessions carry `name`."""
    engine = postgres_engine(
        postgres_url(),
        connect_args={"server_settings": {"application_name": name}},
        **engine_options,
    )
    schema = throwaway_schema()
    store = SqlAlchemyEventStore(engine, tables=EventStoreTables(schema=schema))
    try:
        await store.create_schema()
        yield store
    finally:
        await store.close()
        await engine.dispose()
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


async def kill_sessions(admin: AsyncEngine, name: str) -> int:
    """Terminate every server session named `name` (from `admin`'s own connection), and
    wait until they are gone; return how many there were. (Sessions the store opens
    meanwhile live on.)"""
    # The sessions are picked first, then terminated by pid: never by a condition the
    # planner might evaluate on other sessions' rows.
    named = text("SELECT pid FROM pg_stat_activity WHERE application_name = :name")
    terminate = text("SELECT pg_terminate_backend(pid) FROM unnest(CAST(:pids AS int[])) AS pid")
    alive = text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)")
    async with admin.connect() as conn:
        pids = [int(pid) for pid in (await conn.execute(named, {"name": name})).scalars()]
        await conn.commit()
        await conn.execute(terminate, {"pids": pids})
        await conn.commit()
        for _ in range(1000):  # termination is asynchronous: wait until they are gone
            remaining = await conn.scalar(alive, {"pids": pids})
            await conn.commit()  # pg_stat_activity is a snapshot per transaction
            if remaining == 0:
                return len(pids)
            await anyio.sleep(0.01)
    raise AssertionError(f"the sessions named {name!r} were not terminated")
