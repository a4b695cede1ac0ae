"""Engines for the contexts' databases: SQLite (the embedded default) or PostgreSQL.

Shared plumbing, not a context: every context makes its engine here, and owns its tables.
"""

from __future__ import annotations

from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from eventcore import postgres_engine, sqlite_engine

__all__ = ["engine_for"]


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
