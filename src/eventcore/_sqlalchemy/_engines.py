"""Engines set up the way the event store wants them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

__all__ = ["postgres_engine", "sqlite_engine"]


def sqlite_engine(path: str | Path = ":memory:", **kwargs: Any) -> AsyncEngine:
    """An aiosqlite engine for a database file (the embedded default; needs `eventcore-es[sqlite]`).

    The store configures each connection (WAL, busy timeout, `BEGIN IMMEDIATE` writes).
    `":memory:"` gives one private in-memory database on a single connection: fine for
    tests and demos, but use a file when several tasks write at once.
    """
    if str(path) == ":memory:":
        kwargs.setdefault("poolclass", StaticPool)
        return create_async_engine("sqlite+aiosqlite://", **kwargs)
    return create_async_engine(f"sqlite+aiosqlite:///{path}", **kwargs)


def postgres_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An asyncpg engine for PostgreSQL (needs `eventcore-es[postgres]`).

    `url` may be `postgresql://...` or `postgresql+asyncpg://...`. Keyword arguments go
    to `create_async_engine` (pool size and the like).
    """
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+asyncpg://" + url.split("://", 1)[1]
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_async_engine(url, **kwargs)
