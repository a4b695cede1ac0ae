"""Database errors as eventcore's `StoreError`s, and what to do after a lost connection.

Whether an error came through SQLAlchemy (`DBAPIError`), straight from asyncpg, or as an
`OSError` from connecting, it becomes a [`SchemaError`][eventcore.SchemaError] (missing
tables), a [`StoreConnectionError`][eventcore.StoreConnectionError] (the connection
could not be made, or was lost), or a [`StoreError`][eventcore.StoreError].

A connection lost while in use (a database restart, a failover, `pg_terminate_backend`)
means that the others in the pool are likely dead too: `forget_pool` makes the pool
replace every connection made before now, so that the next checkout (a retry) gets a
fresh one instead of the next dead one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Executable
from sqlalchemy.engine.interfaces import PoolProxiedConnection
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from eventcore._exceptions import SchemaError, StoreConnectionError, StoreError

__all__ = [
    "SCHEMA_HINT",
    "connection_failed",
    "connection_lost",
    "fetch",
    "forget_pool",
    "is_database_error",
    "retried",
    "store_error",
]

T = TypeVar("T")

SCHEMA_HINT = "run create_schema() or your migrations"
# SQLSTATEs of a connection that broke while in use: the server ended the session
# (`pg_terminate_backend`, a shutdown), or the link failed.
_LOST_STATES = {"57P01", "57P02", "08000", "08003", "08006", "08007"}
# ... or that could not be made: no such database, refused login, not accepting
# connections (starting up, too many clients).
_REFUSED_STATES = {"3D000", "57P03", "53300", "53400"}
_SQLITE_CANTOPEN = 14
_SQLITE_NOTADB = 26


def _chain(error: BaseException) -> Iterator[BaseException]:
    """`error`, the driver error SQLAlchemy wraps, and their causes (a few levels)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen and len(seen) < 8:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        if isinstance(orig, BaseException) and id(orig) not in seen:
            seen.add(id(orig))
            yield orig
            current = orig.__cause__ or orig.__context__
        else:
            current = current.__cause__


def _sqlstate(error: BaseException) -> str:
    for link in _chain(error):
        state = getattr(link, "sqlstate", None)
        if isinstance(state, str) and state:
            return state
    return ""


def _asyncpg_lost() -> tuple[type[BaseException], ...]:
    try:
        import asyncpg
    except ImportError:  # SQLite only
        return ()
    return (asyncpg.InterfaceError, asyncpg.InternalClientError)


def connection_lost(error: BaseException) -> bool:
    """Whether `error` means a connection that was open broke (retrying on a fresh
    connection may succeed), as opposed to one that could not be made at all."""
    links = list(_chain(error))
    if any(isinstance(link, DBAPIError) and link.connection_invalidated for link in links):
        return True
    lost: tuple[type[BaseException], ...] = (
        ConnectionResetError,
        ConnectionAbortedError,
        BrokenPipeError,
        *_asyncpg_lost(),
    )
    if any(isinstance(link, lost) for link in links):
        return True
    return _sqlstate(error) in _LOST_STATES


def connection_failed(error: BaseException) -> bool:
    """Whether `error` is about the connection (lost, refused, unreachable), not a statement."""
    if connection_lost(error):
        return True
    state = _sqlstate(error)
    if state.startswith(("08", "28")) or state in _REFUSED_STATES:
        return True
    for link in _chain(error):
        if isinstance(link, OSError | TimeoutError):
            return True
        if getattr(link, "sqlite_errorcode", None) in (_SQLITE_CANTOPEN, _SQLITE_NOTADB):
            return True
    return False


def _missing_table(error: BaseException) -> bool:
    return _sqlstate(error) in ("42P01", "3F000") or "no such table" in str(error)


def is_database_error(error: BaseException) -> bool:
    """Whether `error` comes from the database or the driver (not from the caller's code)."""
    if isinstance(error, SQLAlchemyError | OSError | TimeoutError):
        return True
    module = type(error).__module__
    return module.startswith(("asyncpg", "sqlite3", "aiosqlite"))


def store_error(message: str, error: BaseException) -> StoreError:
    """The eventcore error for a database error, starting with `message`."""
    if isinstance(error, StoreError):
        return error
    if _missing_table(error):
        return SchemaError(f"{message}: {error!r} ({SCHEMA_HINT})")
    if connection_failed(error):
        return StoreConnectionError(f"{message}: {_brief(error)}")
    return StoreError(f"{message}: {error!r}")


def _brief(error: BaseException) -> str:
    """The driver's own error, without SQLAlchemy's wrapping and background link."""
    links = list(_chain(error))
    inner = next((e for e in links if type(e).__module__.startswith("asyncpg")), links[-1])
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return f"the connection was lost ({inner!r})"
    return repr(inner)


async def retried(what: str, operation: Callable[[], Awaitable[T]]) -> T:
    """Run `operation` (idempotent, on connections of its own); once more if the
    connection it used was lost. Database errors become `StoreError`s saying `what`.

    SQLAlchemy replaces the pool's connections when it sees one lost, so the second
    attempt runs on a fresh connection.
    """
    try:
        return await operation()
    except Exception as error:
        if not (is_database_error(error) or isinstance(error, StoreError)):
            raise
        if not connection_lost(error):
            raise store_error(what, error) from error
    try:
        return await operation()
    except Exception as error:
        if not (is_database_error(error) or isinstance(error, StoreError)):
            raise
        raise store_error(what, error) from error


async def fetch(
    engine: AsyncEngine, what: str, query: Executable, params: Mapping[str, Any] | None = None
) -> Sequence[Any]:
    """The rows of a read on a connection of its own (see `retried`)."""

    async def read() -> Sequence[Any]:
        async with engine.connect() as conn:
            return (await conn.execute(query, params)).all()

    return await retried(what, read)


async def forget_pool(
    engine: AsyncEngine, pooled: PoolProxiedConnection | None, error: BaseException | None
) -> None:
    """Close `pooled` (lost) and make the pool replace every connection made before it.

    What SQLAlchemy does itself when it sees a connection lost, for connections whose
    statements bypass it (asyncpg used directly).
    """
    if pooled is None:
        return
    pool: Any = engine.sync_engine.pool
    invalidate = getattr(pool, "_invalidate", None)
    if invalidate is None:  # a pool without it: just this connection
        await greenlet_spawn(pooled.invalidate, error)
    else:
        await greenlet_spawn(invalidate, pooled, error)
