"""Which database and tables the commands work on, and opening a store there."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import click
from sqlalchemy.ext.asyncio import AsyncEngine

from eventcore import (
    EventRegistry,
    EventStoreTables,
    KeyProvider,
    LocalKeyProvider,
    SchemaError,
    SqlAlchemyEventStore,
    UnsupportedBackendError,
    postgres_engine,
    sqlite_engine,
)
from eventcore.cli._missing import missing_tables_message

__all__ = ["KEK_ENV", "Settings", "engine_for", "open_store", "pass_settings", "sqlite_file"]

KEK_ENV = "EVENTCORE_KEK"
"""The environment variable the commands read the key-encryption keys from."""

_SQLITE = ("sqlite:", "sqlite+aiosqlite:")
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
        try:
            return EventStoreTables(prefix=self.prefix, schema=self.schema)
        except SchemaError as error:
            raise click.UsageError(str(error)) from None

    def database_url(self) -> str:
        """`--url`, which every command needs."""
        if not self.url:
            raise click.UsageError("no database: give --url or set EVENTCORE_DATABASE_URL")
        return self.url


pass_settings = click.make_pass_decorator(Settings)
"""Hands a command the group's `Settings`."""


def sqlite_file(url: str) -> Path | None:
    """The file a `sqlite:///FILE` URL names (`None` for other URLs and in-memory ones)."""
    if not url.startswith(_SQLITE):
        return None
    rest = url.split(":", 1)[1].removeprefix("//")
    if not rest.startswith("/") or rest in ("/", "/:memory:"):
        return None
    return Path(rest[1:].split("?", 1)[0])


def engine_for(url: str) -> AsyncEngine:
    """An async engine for `sqlite:///path` or `postgresql://...` (drivers mapped)."""
    try:
        if url.startswith(_SQLITE):
            return sqlite_engine(url)
        if url.startswith(_POSTGRES):
            return postgres_engine(url, pool_size=2, max_overflow=8)
    except UnsupportedBackendError as error:
        raise click.UsageError(f"--url: {error}") from None
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

    A SQLite file that does not exist is not created (a command run on the wrong path
    would leave an empty database behind): only `schema create` makes one. Missing
    tables are reported with where they were looked for, and how to create them.
    """
    tables = settings.tables()
    url = settings.database_url()
    engine = engine_for(url)
    path = sqlite_file(url)
    if path is not None and not path.exists():
        await engine.dispose()
        raise click.ClickException(
            f"no SQLite database at {path} (in {os.getcwd()}): check --url, or create "
            f"it with: eventcore --url {url} schema create"
        )
    provider = settings.key_provider() if keys is True else (keys or None)
    store = SqlAlchemyEventStore(engine, tables=tables, registry=registry, key_provider=provider)
    try:
        yield store
    except BaseException as error:
        missing = _schema_error(error)
        if missing is None:
            raise
        raise click.ClickException(
            await missing_tables_message(engine, settings.url or "", tables, missing)
        ) from None
    finally:
        await store.close()
        await engine.dispose()


def _schema_error(error: BaseException) -> SchemaError | None:
    if isinstance(error, SchemaError):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = _schema_error(inner)
            if found is not None:
                return found
    return None
