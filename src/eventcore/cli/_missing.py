"""Saying where the event store's tables were looked for, when they are not there."""

from __future__ import annotations

import re

from sqlalchemy import Connection, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from eventcore import EventStoreTables, SchemaError

__all__ = ["missing_tables_message"]

_SYSTEM_SCHEMAS = {"information_schema", "pg_catalog", "pg_toast"}
_LISTED = 4  # event stores named at most, found elsewhere in the database
_HINT = re.compile(r"\s*\((run create_schema\(\)[^)]*)\)")


async def missing_tables_message(
    engine: AsyncEngine, url: str, tables: EventStoreTables, error: SchemaError
) -> str:
    """One line: which tables are missing where, and what to type about it."""
    where = _where(engine, url, tables)
    create = f"eventcore --url {url}{_options(tables.schema, tables.prefix)} schema create"
    default: str | None = None
    try:
        async with engine.connect() as conn:
            default, found = await conn.run_sync(_event_stores)
    except Exception:  # the database is there but cannot be inspected: say what we know
        found = []
    schema = None if tables.schema == default else tables.schema
    found.sort(key=lambda store: store[0] != schema)  # those in the schema asked for first
    if (schema, tables.prefix) in found:  # some tables are missing, not the store
        text = _HINT.sub("", str(error)).strip()
        return f"{text} (in {where}: add the missing tables with {create})"
    others = [_options(s, p).strip() for s, p in found[:_LISTED]]
    more = f" and {len(found) - _LISTED} more" if len(found) > _LISTED else ""
    elsewhere = f"; found event stores with {' / '.join(others)}{more}" if others else ""
    return (
        f"no event store tables with prefix {tables.prefix!r} in {where}{elsewhere}: "
        f"pass --prefix (and --schema) to use existing ones, or create them with {create}"
    )


def _where(engine: AsyncEngine, url: str, tables: EventStoreTables) -> str:
    shown = make_url(url).render_as_string(hide_password=True) if url else "the database"
    if engine.dialect.name != "postgresql":
        return shown
    schema = f"schema {tables.schema!r}" if tables.schema else "the search path (public)"
    return f"{schema} of {shown}"


def _options(schema: str | None, prefix: str) -> str:
    return (f" --schema {schema}" if schema else "") + f" --prefix {prefix or chr(39) * 2}"


def _event_stores(sync: Connection) -> tuple[str | None, list[tuple[str | None, str]]]:
    """The default schema, and `(schema, prefix)` of every set of tables that looks like
    an event store's (`None`: the default schema), the default schema's first."""
    inspector = inspect(sync)
    default = inspector.default_schema_name
    schemas: list[str | None] = [None]
    if sync.dialect.name == "postgresql":
        others = [s for s in inspector.get_schema_names() if s not in _SYSTEM_SCHEMAS]
        schemas = [None, *sorted(s for s in others if s != default)]
    found = []
    for schema in schemas:
        names = set(inspector.get_table_names(schema=schema))
        for name in sorted(names):
            if name.endswith("events") and f"{name[: -len('events')]}checkpoints" in names:
                found.append((schema, name[: -len("events")]))
    return default, found
