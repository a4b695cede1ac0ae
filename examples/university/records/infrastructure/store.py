"""The records context's store: its own tables, prefixed `records_`.

Records keeps no event streams of its own yet; its `SqlAlchemyEventStore` gives it the
inbox (`records_inbox`, `records_inbox_failures`) that makes its consumer idempotent,
and the transactions its read model (`records_enrolments`) is written in.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from eventcore import EventStoreTables, SqlAlchemyEventStore

__all__ = ["TABLE_PREFIX", "records_store"]

TABLE_PREFIX = "records_"
"""Prefix of the context's tables: `records_enrolments`, `records_inbox`, ..."""


def records_store(engine: AsyncEngine, *, schema: str | None = None) -> SqlAlchemyEventStore:
    """The store on `engine`, in the context's own tables (in `schema`, if given)."""
    tables = EventStoreTables(prefix=TABLE_PREFIX, schema=schema)
    return SqlAlchemyEventStore(engine, tables=tables)
