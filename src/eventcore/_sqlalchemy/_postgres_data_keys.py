"""`PostgresDataKeyStore`: the data keys' hot statements sent to asyncpg directly.

A new data subject's first event needs its keys looked up and created: through
SQLAlchemy that is a pool checkout and half a dozen round trips, more than the append
itself. Here a look-up is one statement on one of the store's kept connections, and a
creation one more (its anchor upsert and its inserts in a single statement, so one
implicit transaction). Forgetting, inspecting and rotating keep `SqlAlchemyDataKeyStore`'s.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from eventcore._exceptions import SchemaError, StoreError
from eventcore._persistence._data_keys import ALL_GROUPS, DataKey
from eventcore._sqlalchemy._data_keys import Begin, SqlAlchemyDataKeyStore, _key
from eventcore._sqlalchemy._lease import ConnectionLease
from eventcore._sqlalchemy._schema import EventStoreTables

__all__ = ["PostgresDataKeyStore"]

_COLUMNS = (
    "subject_id, key_group, key_id, kek_id, wrapped_key, created_at, forgotten_at, "
    "forgotten_by, reason"
)


class PostgresDataKeyStore(SqlAlchemyDataKeyStore):
    """A `SqlAlchemyDataKeyStore` whose look-ups and creations run on asyncpg directly."""

    def __init__(
        self, engine: AsyncEngine, tables: EventStoreTables, begin: Begin, lease: ConnectionLease
    ) -> None:
        super().__init__(engine, tables, begin)
        self._lease = lease
        dk = tables.qualified(tables.data_keys)
        self._find = (
            f"SELECT {_COLUMNS} FROM {dk} WHERE (subject_id, key_group) IN "
            "(SELECT * FROM unnest($1::text[], $2::text[]))"
        )
        self._by_ids = f"SELECT {_COLUMNS} FROM {dk} WHERE key_id = ANY($1::uuid[])"
        self._create = f"""
WITH wanted AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[], $4::text[], $5::bytea[])
        AS w(subject_id, key_group, key_id, kek_id, wrapped_key)
), anchors AS (
    INSERT INTO {dk} AS d (subject_id, key_group, created_at)
    SELECT DISTINCT subject_id, '{ALL_GROUPS}', now() FROM wanted ORDER BY 1
    ON CONFLICT (subject_id, key_group) DO UPDATE SET subject_id = excluded.subject_id
    RETURNING d.subject_id, d.forgotten_at
)
INSERT INTO {dk} (subject_id, key_group, key_id, kek_id, wrapped_key, created_at)
SELECT w.subject_id, w.key_group, w.key_id, w.kek_id, w.wrapped_key, now()
FROM wanted AS w JOIN anchors AS a ON a.subject_id = w.subject_id
WHERE a.forgotten_at IS NULL
ORDER BY w.subject_id, w.key_group
ON CONFLICT (subject_id, key_group) DO NOTHING
RETURNING key_id
"""

    async def find(self, pairs: Collection[tuple[str, str]], conn: Any = None) -> list[DataKey]:
        """The rows of the `(subject, group)` pairs, and the anchors of their subjects."""
        if conn is not None:
            return await super().find(pairs, conn)
        wanted = sorted(set(pairs) | {(subject, ALL_GROUPS) for subject, _ in pairs})
        args = ([s for s, _ in wanted], [g for _, g in wanted])
        return await self._fetch(self._find, args, "cannot read data keys")

    async def by_ids(self, key_ids: Collection[uuid.UUID]) -> list[DataKey]:
        """The rows of the given key ids (destroyed ones too)."""
        return await self._fetch(self._by_ids, (list(key_ids),), "cannot read data keys")

    async def create(self, keys: Sequence[DataKey], conn: Any = None) -> list[DataKey]:
        """Store `keys` unless their pair has a row or their subject is forgotten."""
        if conn is not None:
            return await super().create(keys, conn)
        ordered = sorted(keys, key=lambda k: (k.subject_id, k.group))
        args = (
            [k.subject_id for k in ordered],
            [k.group for k in ordered],
            [k.key_id for k in ordered],
            [k.kek_id for k in ordered],
            [k.wrapped for k in ordered],
        )
        inserted = await self._fetch(self._create, args, "cannot create data keys", raw=True)
        if len(inserted) == len(keys):
            return list(keys)  # every key is ours: no anchor is forgotten
        return await self.find([(k.subject_id, k.group) for k in keys])

    async def _fetch(
        self, sql: str, args: tuple[Any, ...], what: str, *, raw: bool = False
    ) -> list[Any]:
        async def run(conn: asyncpg.Connection) -> list[Any]:
            try:
                rows: list[Any] = await conn.fetch(sql, *args)
            except asyncpg.UndefinedTableError as error:
                raise SchemaError(f"{what}: {error} (run create_schema() first)") from error
            except asyncpg.PostgresError as error:
                raise StoreError(f"{what}: {error!r}") from error
            return rows

        rows = await self._lease.run(run)
        return rows if raw else [_key(row) for row in rows]
