"""The registration context's event store: its own tables, prefixed `registration_`.

Each bounded context owns its tables, so several contexts can share one database (or
move to separate ones later) without reading or locking each other's streams.
"""

from __future__ import annotations

from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from eventcore import EventStoreTables, SqlAlchemyEventStore, postgres_engine, sqlite_engine

__all__ = ["TABLE_PREFIX", "engine_for", "registration_store"]

TABLE_PREFIX = "registration_"
"""Prefix of the context's tables: `registration_events`, `registration_snapshots`."""


def engine_for(database_url: str) -> AsyncEngine:
    """An engine for a SQLite or PostgreSQL URL (no connection is made yet).

    `sqlite:///path.db` and `sqlite+aiosqlite:///path.db` use the embedded default;
    `postgresql://...` and `postgresql+asyncpg://...` use PostgreSQL through asyncpg.
    """
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        return sqlite_engine(url.database or ":memory:")
    if backend == "postgresql":
        return postgres_engine(database_url)
    raise ValueError(f"unsupported database {backend!r}: use a sqlite or postgresql URL")


def registration_store(engine: AsyncEngine, *, schema: str | None = None) -> SqlAlchemyEventStore:
    """The event store on `engine`, in the context's own tables (in `schema`, if given)."""
    tables = EventStoreTables(prefix=TABLE_PREFIX, schema=schema)
    return SqlAlchemyEventStore(engine, tables=tables)
