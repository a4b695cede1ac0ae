"""asyncpg's errors, for the statements the PostgreSQL backend sends to asyncpg directly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

from eventcore._exceptions import SchemaError, StoreConnectionError, StoreError
from eventcore._sqlalchemy._errors import SCHEMA_HINT, connection_failed

__all__ = ["CONNECTION_ERRORS", "DRIVER_ERRORS", "LostRace", "translate", "translated_errors"]

CONNECTION_ERRORS = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # The protocol is left mid-message (e.g. the server's "terminating connection" notice
    # arrived on an idle connection): the connection is unusable.
    asyncpg.InternalClientError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    ConnectionError,
    OSError,
    TimeoutError,
)
DRIVER_ERRORS = (asyncpg.PostgresError, *CONNECTION_ERRORS)


class LostRace(Exception):
    """A concurrent writer took a version or event id this append wanted."""


def translate(error: BaseException) -> Exception:
    """The eventcore error for a driver error (`LostRace` for a unique violation)."""
    if isinstance(error, asyncpg.UniqueViolationError):
        return LostRace(str(error))
    if isinstance(error, asyncpg.UndefinedTableError | asyncpg.InvalidSchemaNameError):
        return SchemaError(f"{error} ({SCHEMA_HINT})")
    if isinstance(error, CONNECTION_ERRORS) or connection_failed(error):
        return StoreConnectionError(f"PostgreSQL connection failed: {error!r}")
    return StoreError(f"PostgreSQL error: {error!r}")


@contextmanager
def translated_errors() -> Iterator[None]:
    """Raise asyncpg's errors as eventcore's (see `translate`)."""
    try:
        yield
    except DRIVER_ERRORS as error:
        raise translate(error) from error
