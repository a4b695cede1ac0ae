"""`transaction`: `engine.begin()` whose database errors become eventcore's `StoreError`s."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from eventcore._sqlalchemy._errors import is_database_error, store_error

__all__ = ["transaction"]


def transaction(engine: AsyncEngine, what: str) -> _Transaction:
    """`async with transaction(engine, "cannot do X") as conn:` (errors say `what`)."""
    return _Transaction(engine, what)


class _Transaction:
    """`engine.begin()` whose database errors become eventcore's `StoreError`s."""

    def __init__(self, engine: AsyncEngine, what: str) -> None:
        self._context = engine.begin()
        self._what = what

    async def __aenter__(self) -> AsyncConnection:
        try:
            return await self._context.__aenter__()
        except Exception as error:
            if not is_database_error(error):
                raise
            raise store_error(self._what, error) from error

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self._context.__aexit__(*exc)
        except Exception as error:
            if not is_database_error(error):
                raise
            raise store_error(self._what, error) from error
        if isinstance(exc[1], Exception) and is_database_error(exc[1]):
            raise store_error(self._what, exc[1]) from exc[1]
