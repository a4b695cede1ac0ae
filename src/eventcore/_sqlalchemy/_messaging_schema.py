"""The outbox and inbox tables (part of `EventStoreTables`)."""

from __future__ import annotations

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
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.schema import Identity

__all__ = [
    "inbox_failures_table",
    "inbox_table",
    "outbox_lanes_table",
    "outbox_relays_table",
    "outbox_table",
]

_PENDING = text("sent_at IS NULL AND dead_at IS NULL")


def outbox_table(metadata: MetaData, name: str, schema: str | None) -> Table:
    """Messages to publish, written in the transaction that produced them.

    A row is pending until the relay has it confirmed by the broker (`sent_at`) or gives
    up on it (`dead_at`). `lane` is a stable hash of the partition key: a relay owns
    whole lanes, so one key's messages are published by one relay, in order.
    """
    position_type = BigInteger().with_variant(Integer(), "sqlite")
    stamp = DateTime(timezone=True)
    return Table(
        name,
        metadata,
        Column("position", position_type, Identity(), primary_key=True),
        Column("message_id", Uuid(), nullable=False, unique=True),
        Column("topic", String(255), nullable=False),
        Column("partition_key", String(255), nullable=False),
        Column("lane", Integer(), nullable=False),
        Column("message_type", String(255), nullable=False),
        Column("schema_version", Integer(), nullable=False),
        Column("payload", LargeBinary(), nullable=False),
        Column("headers", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        Column("created_at", stamp, nullable=False),
        Column("available_at", stamp, nullable=False),
        Column("attempts", Integer(), nullable=False, server_default="0"),
        Column("last_error", Text(), nullable=True),
        Column("claimed_by", String(64), nullable=True),
        Column("claimed_until", stamp, nullable=True),
        Column("sent_at", stamp, nullable=True),
        Column("dead_at", stamp, nullable=True),
        # What relays scan: pending rows, oldest first (filtered by their lanes).
        Index(
            f"{name}_pending",
            "position",
            postgresql_where=_PENDING,
            sqlite_where=_PENDING,
        ),
        # Whether a key has an earlier message still waiting (ordering per key).
        Index(
            f"{name}_pending_keys",
            "partition_key",
            "position",
            postgresql_where=_PENDING,
            sqlite_where=_PENDING,
        ),
        # What the retention clean-up deletes (pending rows are not in it).
        Index(
            f"{name}_sent",
            "sent_at",
            postgresql_where=text("sent_at IS NOT NULL"),
            sqlite_where=text("sent_at IS NOT NULL"),
        ),
        schema=schema,
        sqlite_autoincrement=True,
        # Each message is updated twice (claimed, then sent): room on its page lets
        # PostgreSQL keep the claim's new row version there (a HOT update).
        postgresql_with={"fillfactor": 50},
    )


def outbox_lanes_table(metadata: MetaData, name: str, schema: str | None) -> Table:
    """Which relay owns each lane of the outbox, until when (by the relays' clocks)."""
    return Table(
        name,
        metadata,
        Column("lane", Integer(), primary_key=True, autoincrement=False),
        Column("owner", String(64), nullable=True),
        Column("lease_until", DateTime(timezone=True), nullable=True),
        schema=schema,
    )


def outbox_relays_table(metadata: MetaData, name: str, schema: str | None) -> Table:
    """The relays running now: each renews its row; lanes are shared among the live ones."""
    return Table(
        name,
        metadata,
        Column("relay_id", String(64), primary_key=True),
        Column("seen_until", DateTime(timezone=True), nullable=False),
        schema=schema,
    )


def inbox_table(metadata: MetaData, name: str, schema: str | None) -> Table:
    """The messages each consumer has handled: a second delivery finds its row and is skipped."""
    return Table(
        name,
        metadata,
        Column("consumer", String(255), primary_key=True),
        Column("message_id", Uuid(), primary_key=True),
        Column("handled_at", DateTime(timezone=True), nullable=False),
        schema=schema,
    )


def inbox_failures_table(metadata: MetaData, name: str, schema: str | None) -> Table:
    """Messages a consumer failed on: their attempts, and a copy once given up on (dead)."""
    return Table(
        name,
        metadata,
        Column("consumer", String(255), primary_key=True),
        Column("message_id", Uuid(), primary_key=True),
        Column("topic", String(255), nullable=False),
        Column("partition_key", String(255), nullable=False),
        Column("message_type", String(255), nullable=False),
        Column("schema_version", Integer(), nullable=False),
        Column("payload", LargeBinary(), nullable=False),
        Column("headers", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        Column("attempts", Integer(), nullable=False),
        Column("error", Text(), nullable=False),
        Column("failed_at", DateTime(timezone=True), nullable=False),
        Column("dead_at", DateTime(timezone=True), nullable=True),
        schema=schema,
    )
