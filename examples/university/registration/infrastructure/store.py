"""The registration context's event store: its own tables, prefixed `registration_`.

Each bounded context owns its tables, so several contexts can share one database (or
move to separate ones later) without reading or locking each other's streams.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from eventcore import EventStoreTables, SqlAlchemyEventStore
from university.database import engine_for

__all__ = ["TABLE_PREFIX", "engine_for", "registration_store"]

TABLE_PREFIX = "registration_"
"""Prefix of the context's tables: `registration_events`, `registration_outbox`, ..."""


def registration_store(engine: AsyncEngine, *, schema: str | None = None) -> SqlAlchemyEventStore:
    """The event store on `engine`, in the context's own tables (in `schema`, if given)."""
    tables = EventStoreTables(prefix=TABLE_PREFIX, schema=schema)
    return SqlAlchemyEventStore(engine, tables=tables)
