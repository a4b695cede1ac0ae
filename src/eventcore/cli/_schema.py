"""`eventcore schema create`: create what is missing, report what cannot be added."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from sqlalchemy import Connection, Table, inspect
from sqlalchemy.exc import DBAPIError, SAWarning
from sqlalchemy.ext.asyncio import AsyncEngine

from eventcore import EventStoreTables, StoreConnectionError, create_schema

__all__ = ["SchemaReport", "upgrade_schema"]


@dataclass
class SchemaReport:
    """What `upgrade_schema` did."""

    created_tables: list[str] = field(default_factory=list)
    created_indexes: list[str] = field(default_factory=list)
    outdated: list[str] = field(default_factory=list)
    """Existing tables that lack columns, with the columns (a migration must add them)."""


async def upgrade_schema(engine: AsyncEngine, tables: EventStoreTables) -> SchemaReport:
    """Create the missing tables, and the missing indexes of existing ones.

    Existing tables that lack columns are reported, not changed: adding columns
    (and filling them in) is a migration's job.
    """
    own = [value for value in vars(tables).values() if isinstance(value, Table)]
    try:
        async with engine.connect() as conn:
            existed = await conn.run_sync(lambda sync: {t.name for t in own if _exists(sync, t)})
    except (OSError, DBAPIError) as error:
        reason = getattr(error, "orig", None) or error
        raise StoreConnectionError(f"cannot connect to the database: {reason!r}") from error
    await create_schema(engine, tables)
    report = SchemaReport(created_tables=[t.name for t in own if t.name not in existed])
    async with engine.begin() as conn:
        for table in own:
            report.created_indexes += await conn.run_sync(_create_missing_indexes, table)
        missing = {t.name: await conn.run_sync(_missing_columns, t) for t in own}
    report.outdated = [f"{name} lacks {', '.join(c)}" for name, c in missing.items() if c]
    return report


def _exists(sync: Connection, table: Table) -> bool:
    return inspect(sync).has_table(table.name, schema=table.schema)


def _create_missing_indexes(sync: Connection, table: Table) -> list[str]:
    before = _index_names(sync, table)
    for index in table.indexes:
        if index.name not in before:
            index.create(sync, checkfirst=True)  # skipped where it does not apply
    return sorted(_index_names(sync, table) - before)


def _index_names(sync: Connection, table: Table) -> set[str]:
    found = inspect(sync).get_indexes(table.name, schema=table.schema)
    return {index["name"] for index in found if index["name"]}


def _missing_columns(sync: Connection, table: Table) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)  # xid8 is a type SQLAlchemy does not know
        found = inspect(sync).get_columns(table.name, schema=table.schema)
    names = {column["name"] for column in found}
    return [column.name for column in table.columns if column.name not in names]
