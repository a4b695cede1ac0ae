"""The event store's tables, declared as SQLAlchemy `Table`s (include them in alembic)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    inspect,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateSchema, DefaultClause, Identity
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.types import UserDefinedType

from eventcore._exceptions import SchemaError
from eventcore._sqlalchemy._errors import is_database_error, store_error
from eventcore._sqlalchemy._messaging_schema import (
    inbox_failures_table,
    inbox_table,
    outbox_lanes_table,
    outbox_relays_table,
    outbox_table,
)

__all__ = ["EventStoreTables", "check_schema", "create_schema"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,40}$")


class TransactionId(UserDefinedType[int]):
    """PostgreSQL `xid8`: the id of the writing transaction (a BIGINT elsewhere).

    Stored with every event so that readers of the global log can tell which
    positions may still be filled by transactions in flight (gap-free subscriptions).
    """

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "xid8"


@compiles(TransactionId)
def _transaction_id_elsewhere(element: TransactionId, compiler: Any, **kw: Any) -> str:
    return "BIGINT"


@compiles(TransactionId, "postgresql")
def _transaction_id_postgres(element: TransactionId, compiler: Any, **kw: Any) -> str:
    return "xid8"


class _CurrentTransactionId(FunctionElement[int]):
    inherit_cache = True


@compiles(_CurrentTransactionId)
def _no_transaction_id(element: _CurrentTransactionId, compiler: Any, **kw: Any) -> str:
    return "NULL"


@compiles(_CurrentTransactionId, "postgresql")
def _pg_current_xact_id(element: _CurrentTransactionId, compiler: Any, **kw: Any) -> str:
    return "pg_current_xact_id()"


def _json() -> JSON:
    return JSON().with_variant(JSONB(), "postgresql")


class EventStoreTables:
    """The tables of one event store, with a name prefix and an optional database schema.

    Give each bounded context its own prefix (or PostgreSQL schema) so that several
    stores share one database without sharing tables:

    ```python
    tables = EventStoreTables(prefix="registration_")
    ```

    `metadata` is a SQLAlchemy `MetaData`: pass your own to have the tables in your
    alembic migrations, or use `tables.metadata` as (part of) alembic's `target_metadata`.
    """

    def __init__(
        self,
        *,
        prefix: str = "eventcore_",
        schema: str | None = None,
        metadata: MetaData | None = None,
    ) -> None:
        if prefix and not _IDENTIFIER.match(prefix):
            raise SchemaError(f"table prefix {prefix!r} must be letters, digits and underscores")
        if schema is not None and not _IDENTIFIER.match(schema):
            raise SchemaError(f"schema {schema!r} must be letters, digits and underscores")
        self.prefix = prefix
        self.schema = schema
        self.metadata = metadata if metadata is not None else MetaData()
        self.events = _events_table(self.metadata, f"{prefix}events", schema)
        self.snapshots = _snapshots_table(self.metadata, f"{prefix}snapshots", schema)
        self.checkpoints = _checkpoints_table(self.metadata, f"{prefix}checkpoints", schema)
        self.dead_letters = _dead_letters_table(self.metadata, f"{prefix}dead_letters", schema)
        self.projections = _projections_table(self.metadata, f"{prefix}projections", schema)
        self.deadlines = _deadlines_table(self.metadata, f"{prefix}deadlines", schema)
        self.outbox = outbox_table(self.metadata, f"{prefix}outbox", schema)
        self.outbox_lanes = outbox_lanes_table(self.metadata, f"{prefix}outbox_lanes", schema)
        self.outbox_relays = outbox_relays_table(self.metadata, f"{prefix}outbox_relays", schema)
        self.inbox = inbox_table(self.metadata, f"{prefix}inbox", schema)
        self.inbox_failures = inbox_failures_table(self.metadata, f"{prefix}inbox_failures", schema)
        self.data_keys = _data_keys_table(self.metadata, f"{prefix}data_keys", schema)
        self.idempotency = _idempotency_table(self.metadata, f"{prefix}idempotency_keys", schema)

    def qualified(self, table: Table) -> str:
        """The table's name, schema-qualified and quoted, for hand-written SQL."""
        name = f'"{table.name}"'
        return f'"{self.schema}".{name}' if self.schema else name


def _events_table(metadata: MetaData, name: str, schema: str | None) -> Table:
    position_type = BigInteger().with_variant(Integer(), "sqlite")
    return Table(
        name,
        metadata,
        Column("global_position", position_type, Identity(), primary_key=True),
        Column("event_id", Uuid(), nullable=False),
        Column("stream_id", String(255), nullable=False),
        Column("stream_type", String(255), nullable=False, server_default=""),
        Column("version", BigInteger(), nullable=False),
        Column("event_type", String(255), nullable=False),
        Column("schema_version", Integer(), nullable=False),
        Column("data", _json(), nullable=False),
        Column("metadata", _json(), nullable=False),
        Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column(
            "transaction_id",
            TransactionId(),
            nullable=True,
            server_default=DefaultClause(_CurrentTransactionId()),
        ),
        UniqueConstraint("stream_id", "version", name=f"{name}_stream_version_key"),
        Index(f"{name}_event_id_key", "event_id", unique=True),
        # The commit-order log that subscriptions read (PostgreSQL only: elsewhere the
        # transaction id is NULL and positions already are in commit order).
        Index(f"{name}_log_order", "transaction_id", "global_position").ddl_if(
            dialect="postgresql"
        ),
        schema=schema,
        sqlite_autoincrement=True,
    )


def _snapshots_table(metadata: MetaData, name: str, schema: str | None) -> Table:
    return Table(
        name,
        metadata,
        Column("stream_id", String(255), primary_key=True),
        Column("aggregate_type", String(255), nullable=False),
        Column("version", BigInteger(), nullable=False),
        Column("schema_version", Integer(), nullable=False),
        Column("state", _json(), nullable=False),
        Column("recorded_at", DateTime(timezone=True), nullable=True),
        Column("taken_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        schema=schema,
    )


def _checkpoints_table(metadata: MetaData, name: str, schema: str | None) -> Table:
    return Table(
        name,
        metadata,
        Column("name", String(255), primary_key=True),
        Column("transaction_id", BigInteger(), nullable=False),
        Column("global_position", BigInteger(), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        schema=schema,
    )


def _dead_letters_table(metadata: MetaData, name: str, schema: str | None) -> Table:
    """Events parked by projectors: one row per (projector, event), until replayed."""
    return Table(
        name,
        metadata,
        Column("projector", String(255), primary_key=True),
        Column("event_id", Uuid(), primary_key=True),
        Column("stream_id", String(255), nullable=False),
        Column("version", BigInteger(), nullable=False),
        Column("event_type", String(255), nullable=False),
        Column("transaction_id", BigInteger(), nullable=False),
        Column("global_position", BigInteger(), nullable=False),
        Column("error", Text(), nullable=False),
        Column("attempts", Integer(), nullable=False),
        Column("parked_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        # Which streams a projector has parked events in (ordered projectors ask per batch).
        Index(f"{name}_streams", "projector", "stream_id", "version"),
        schema=schema,
    )


def _projections_table(metadata: MetaData, name: str, schema: str | None) -> Table:
    """Which version of each projection's read model serves readers (after a rebuild)."""
    return Table(
        name,
        metadata,
        Column("name", String(255), primary_key=True),
        Column("active_version", Integer(), nullable=False),
        Column("switched_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        schema=schema,
    )


def _deadlines_table(metadata: MetaData, name: str, schema: str | None) -> Table:
    """Events scheduled to be appended to a stream when due (process manager deadlines)."""
    return Table(
        name,
        metadata,
        Column("id", Uuid(), primary_key=True),
        Column("stream_id", String(255), nullable=False),
        Column("stream_type", String(255), nullable=False, server_default=""),
        Column("due_at", DateTime(timezone=True), nullable=False),
        Column("event_type", String(255), nullable=False),
        Column("schema_version", Integer(), nullable=False),
        Column("data", Text(), nullable=False),
        Column("metadata", Text(), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Index(f"{name}_due", "due_at"),
        schema=schema,
    )


def _data_keys_table(metadata: MetaData, name: str, schema: str | None) -> Table:
    """Data keys of personal data, wrapped, one per (subject, group); group `*` anchors a
    subject. A forgotten key keeps its row, without key, as the record of its forgetting."""
    return Table(
        name,
        metadata,
        Column("subject_id", String(255), primary_key=True),
        Column("key_group", String(64), primary_key=True),
        Column("key_id", Uuid(), nullable=True),
        Column("kek_id", String(64), nullable=True),
        Column("wrapped_key", LargeBinary(), nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("forgotten_at", DateTime(timezone=True), nullable=True),
        Column("forgotten_by", Text(), nullable=True),
        Column("reason", Text(), nullable=True),
        Index(f"{name}_key_id", "key_id", unique=True),
        schema=schema,
    )


def _idempotency_table(metadata: MetaData, name: str, schema: str | None) -> Table:
    """Idempotent commands' keys and results, written in the command's transaction."""
    return Table(
        name,
        metadata,
        Column("scope", String(255), primary_key=True),
        Column("key", String(255), primary_key=True),
        Column("fingerprint", String(128), nullable=False),
        Column("status", Integer(), nullable=False),
        Column("headers", _json(), nullable=False),
        Column("body", LargeBinary(), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("expires_at", DateTime(timezone=True), nullable=False),
        Index(f"{name}_expires", "expires_at"),
        schema=schema,
    )


def _own_tables(tables: EventStoreTables) -> list[Table]:
    return [
        tables.events, tables.snapshots, tables.checkpoints, tables.dead_letters,
        tables.projections, tables.deadlines, tables.outbox, tables.outbox_lanes,
        tables.outbox_relays, tables.inbox, tables.inbox_failures, tables.data_keys,
        tables.idempotency,
    ]  # fmt: skip


async def create_schema(engine: AsyncEngine, tables: EventStoreTables | None = None) -> None:
    """Create the event store's tables (and PostgreSQL schema) if they do not exist.

    Fine for tests, demos and first deployments; in production, prefer adding
    `tables.metadata` to your alembic migrations. Raises
    [`StoreConnectionError`][eventcore.StoreConnectionError] when the database cannot
    be reached (a wrong host or port, a missing database, a refused login).
    """
    tables = tables or EventStoreTables()
    try:
        await _create(engine, tables)
    except Exception as error:
        if not is_database_error(error):
            raise
        raise store_error("cannot create the event store's tables", error) from error


async def _create(engine: AsyncEngine, tables: EventStoreTables) -> None:
    async with engine.begin() as conn:
        if tables.schema and engine.dialect.name == "postgresql":
            await conn.execute(CreateSchema(tables.schema, if_not_exists=True))
        own = _own_tables(tables)
        await conn.run_sync(lambda sync: tables.metadata.create_all(sync, own, checkfirst=True))


async def check_schema(engine: AsyncEngine, tables: EventStoreTables | None = None) -> None:
    """Raise [`SchemaError`][eventcore.SchemaError], naming them, if any of the store's
    tables is missing (run `create_schema()` or your migrations)."""
    tables = tables or EventStoreTables()

    def missing(sync: Any) -> list[str]:
        present = set(inspect(sync).get_table_names(schema=tables.schema))
        return [t.name for t in _own_tables(tables) if t.name not in present]

    try:
        async with engine.connect() as conn:
            absent = await conn.run_sync(missing)
    except Exception as error:
        if not is_database_error(error):
            raise
        raise store_error("cannot read the database's tables", error) from error
    if absent:
        where = f" in schema {tables.schema!r}" if tables.schema else ""
        raise SchemaError(
            f"missing tables{where}: {', '.join(absent)} (run create_schema() or your migrations)"
        )
