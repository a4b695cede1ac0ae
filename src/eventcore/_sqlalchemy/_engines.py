"""Engines set up the way the event store wants them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from eventcore._exceptions import UnsupportedBackendError

__all__ = ["postgres_engine", "sqlite_engine"]

_SQLITE_URLS = ("sqlite+aiosqlite://", "sqlite://")
_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg")


def sqlite_engine(path: str | Path = ":memory:", **kwargs: Any) -> AsyncEngine:
    """An aiosqlite engine for a database file (the embedded default; needs `eventcore-es[sqlite]`).

    `path` is a file name (`"app.db"`, a `Path`) or a URL: `sqlite+aiosqlite:///app.db`
    or `sqlite:///app.db` (the driver is aiosqlite either way; four slashes for an
    absolute path). The store configures each connection (WAL, busy timeout,
    `BEGIN IMMEDIATE` writes). `":memory:"` (or `sqlite://`) gives one private
    in-memory database on a single connection: fine for tests and demos, but use a
    file when several tasks write at once.
    """
    path = _sqlite_path(str(path))
    if path == ":memory:":
        kwargs.setdefault("poolclass", StaticPool)
        return create_async_engine("sqlite+aiosqlite://", **kwargs)
    return create_async_engine(f"sqlite+aiosqlite:///{path}", **kwargs)


def _sqlite_path(path: str) -> str:
    """The file of a SQLite URL (`:memory:` for none), or `path` itself if not a URL."""
    for prefix in _SQLITE_URLS:
        if path.startswith(prefix):
            rest = path[len(prefix) :]
            if rest and not rest.startswith("/"):
                raise UnsupportedBackendError(
                    f"SQLite URL {path!r} has no file path: write {prefix}/{rest} "
                    f"(three slashes, then the file; four for an absolute path)"
                )
            return rest[1:].split("?", 1)[0] or ":memory:"
    if "://" in path:
        scheme = path.split("://", 1)[0]
        raise UnsupportedBackendError(
            f"sqlite_engine() takes a file name or a sqlite:/// URL, not a {scheme}:// URL"
            + (" (use postgres_engine())" if scheme.startswith("postgres") else "")
        )
    return path


def postgres_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An asyncpg engine for PostgreSQL (needs `eventcore-es[postgres]`).

    `url` may be `postgresql://...`, `postgres://...` or `postgresql+asyncpg://...`; any
    other scheme raises [`UnsupportedBackendError`][eventcore.UnsupportedBackendError].
    Keyword arguments go to `create_async_engine` (pool size and the like).
    """
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in _POSTGRES_SCHEMES:
        hint = " (use sqlite_engine())" if scheme.startswith("sqlite") else ""
        raise UnsupportedBackendError(
            f"postgres_engine() needs a postgresql:// or postgresql+asyncpg:// URL, "
            f"not {_redacted(url)!r}{hint}"
        )
    if scheme != "postgresql+asyncpg":
        url = "postgresql+asyncpg://" + url.split("://", 1)[1]
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_async_engine(url, **kwargs)


def _redacted(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("://", 1)[0] + "://..." if "://" in url else url
