"""Engines for the contexts' databases: SQLite (the embedded default) or PostgreSQL.

Shared plumbing, not a context: every context makes its engine here, and owns its tables.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

import anyio
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from eventcore import SqlAlchemyEventStore, postgres_engine, sqlite_engine

__all__ = ["ContextServices", "engine_for"]


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


class ContextServices:
    """What a context's `bootstrap()` returns: its store, closed with the context.

    An async context manager; `aclose()` disposes of the engine if `bootstrap()`
    created it (even when the closing task is being cancelled).
    """

    def __init__(self, store: SqlAlchemyEventStore, *, owns_engine: bool) -> None:
        self.store = store
        self._owns_engine = owns_engine

    async def aclose(self) -> None:
        """Dispose of the engine if `bootstrap()` created it (even when cancelled)."""
        if self._owns_engine:
            with anyio.CancelScope(shield=True):
                await self.store.engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
