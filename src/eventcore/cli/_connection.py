"""Which database and tables the commands work on, and opening a store there."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import click
from sqlalchemy.ext.asyncio import AsyncEngine

from eventcore import (
    EventRegistry,
    EventStoreTables,
    SqlAlchemyEventStore,
    postgres_engine,
    sqlite_engine,
)

__all__ = ["Settings", "engine_for", "open_store", "pass_settings"]

_SQLITE = ("sqlite:///", "sqlite+aiosqlite:///")
_POSTGRES = ("postgresql://", "postgres://", "postgresql+asyncpg://")


@dataclass(frozen=True)
class Settings:
    """The group's options, shared by every command."""

    url: str | None
    schema: str | None
    prefix: str
    app: str | None

    def tables(self) -> EventStoreTables:
        """The event store's tables, as `--schema` and `--prefix` name them."""
        if self.schema is not None and self.database_url().startswith(_SQLITE):
            raise click.UsageError("--schema is for PostgreSQL; SQLite has no schemas")
        return EventStoreTables(prefix=self.prefix, schema=self.schema)

    def database_url(self) -> str:
        """`--url`, which every command needs."""
        if not self.url:
            raise click.UsageError("no database: give --url or set EVENTCORE_DATABASE_URL")
        return self.url


pass_settings = click.make_pass_decorator(Settings)
"""Hands a command the group's `Settings`."""


def engine_for(url: str) -> AsyncEngine:
    """An async engine for `sqlite:///path` or `postgresql://...` (drivers mapped)."""
    if url.startswith(_SQLITE):
        path = url.split(":///", 1)[1]
        return sqlite_engine(path or ":memory:")
    if url.startswith(_POSTGRES):
        return postgres_engine(url, pool_size=2, max_overflow=8)
    scheme = url.split("://", 1)[0] if "://" in url else url
    raise click.UsageError(
        f"unsupported database URL scheme {scheme!r}: use sqlite:///FILE or postgresql://..."
    )


@asynccontextmanager
async def open_store(
    settings: Settings, *, registry: EventRegistry | None = None
) -> AsyncIterator[SqlAlchemyEventStore]:
    """The event store of `settings`; its connections are closed on the way out."""
    tables = settings.tables()
    engine = engine_for(settings.database_url())
    store = SqlAlchemyEventStore(engine, tables=tables, registry=registry)
    try:
        yield store
    finally:
        await store.close()
        await engine.dispose()
