"""Which database and tables the commands work on, and opening a store there."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import click
from sqlalchemy.ext.asyncio import AsyncEngine

from eventcore import (
    EventRegistry,
    EventStoreTables,
    KeyProvider,
    LocalKeyProvider,
    SqlAlchemyEventStore,
    postgres_engine,
    sqlite_engine,
)

__all__ = ["KEK_ENV", "Settings", "engine_for", "open_store", "pass_settings"]

KEK_ENV = "EVENTCORE_KEK"
"""The environment variable the commands read the key-encryption keys from."""

_SQLITE = ("sqlite:///", "sqlite+aiosqlite:///")
_POSTGRES = ("postgresql://", "postgres://", "postgresql+asyncpg://")


@dataclass(frozen=True)
class Settings:
    """The group's options, shared by every command."""

    url: str | None
    schema: str | None
    prefix: str
    app: str | None
    kek_file: str | None = None

    def key_provider(self) -> KeyProvider | None:
        """The key-encryption keys: from --kek-file, else $EVENTCORE_KEK, else none."""
        if self.kek_file:
            return LocalKeyProvider.from_file(self.kek_file)
        if os.environ.get(KEK_ENV, "").strip():
            return LocalKeyProvider.from_env(KEK_ENV)
        return None

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
    settings: Settings,
    *,
    registry: EventRegistry | None = None,
    keys: KeyProvider | bool | None = True,
) -> AsyncIterator[SqlAlchemyEventStore]:
    """The event store of `settings`; its connections are closed on the way out.

    With `keys=True` it opens personal data with the settings' key provider, if any;
    `False` never does (the store then shows sealed values as stored).
    """
    tables = settings.tables()
    provider = settings.key_provider() if keys is True else (keys or None)
    engine = engine_for(settings.database_url())
    store = SqlAlchemyEventStore(engine, tables=tables, registry=registry, key_provider=provider)
    try:
        yield store
    finally:
        await store.close()
        await engine.dispose()
