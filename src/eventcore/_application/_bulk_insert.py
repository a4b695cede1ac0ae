"""Many rows into one table in one `executemany`: through asyncpg directly when that is safe.

SQLAlchemy's own `executemany` on asyncpg ends in the driver's `executemany` too, after
work of its own (statement lookup, parameter processing, greenlet hops) that makes a
batch about a quarter slower. Where SQLAlchemy would do nothing to the values, the same
statement (as SQLAlchemy compiles it for the dialect) goes to asyncpg with the same
parameters:

- the connection is asyncpg's, and its transaction has begun (never autocommit);
- every row has the first row's keys (others are ignored), all columns of the table;
- no column of those needs SQLAlchemy's type processing (JSON, Enum, Boolean, ... do),
  no Python-side default fills a missing column, nothing is returned;
- no `schema_translate_map` rewrites the statement.

Anything else goes through SQLAlchemy, which raises its usual errors. On the fast path,
errors are asyncpg's own (the transaction is aborted either way).
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import itemgetter
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Table, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["insert_many"]

_Plan = tuple[str, Any] | None  # the SQL and a getter of the parameters; None: SQLAlchemy
# Per table (forgotten with it), per dialect and set of keys.
_plans: WeakKeyDictionary[Table, dict[tuple[Dialect, frozenset[str]], _Plan]]
_plans = WeakKeyDictionary()


async def insert_many(
    connection: AsyncConnection, table: Table, rows: list[dict[str, Any]]
) -> None:
    """Insert `rows` (not empty) into `table` on `connection`, in one `executemany`."""
    driver = await _driver_in_transaction(connection)
    plan = None if driver is None else _plan_for(connection.dialect, table, rows[0].keys())
    if plan is not None:
        sql, parameters = plan
        try:
            # Keys the first row lacks are ignored in the others, as SQLAlchemy does.
            values = [parameters(row) for row in rows]
        except KeyError:
            pass  # a row lacks one of the first row's keys: SQLAlchemy says which
        else:
            await driver.executemany(sql, values)
            return
    await connection.execute(insert(table), rows)


async def _driver_in_transaction(connection: AsyncConnection) -> Any:
    """The asyncpg connection beneath `connection` if its transaction has begun, else None."""
    sync = connection.sync_connection
    if connection.dialect.driver != "asyncpg" or sync is None:
        return None
    if sync.get_execution_options().get("schema_translate_map"):
        return None  # SQLAlchemy rewrites the statement per connection
    driver = (await connection.get_raw_connection()).driver_connection
    return driver if driver is not None and driver.is_in_transaction() else None


def _plan_for(dialect: Dialect, table: Table, keys: Iterable[str]) -> _Plan:
    cache = _plans.get(table)
    if cache is None:
        cache = _plans[table] = {}
    key = (dialect, frozenset(keys))
    if key not in cache:
        cache[key] = _plan(dialect, table, key[1])
    return cache[key]


def _plan(dialect: Dialect, table: Table, keys: frozenset[str]) -> _Plan:
    columns = table.c
    if not keys <= set(columns.keys()):
        return None
    compiled: Any = insert(table).compile(
        dialect=dialect, column_keys=sorted(keys), for_executemany=True
    )
    names = tuple(compiled.positiontup or ())
    if set(names) != keys or compiled.insert_prefetch or compiled.effective_returning:
        return None
    for name in names:
        column_type = columns[name].type
        if column_type.dialect_impl(dialect).bind_processor(dialect) is not None:
            return None
    getter = itemgetter(*names)
    parameters = getter if len(names) > 1 else (lambda row: (getter(row),))
    return compiled.string, parameters
