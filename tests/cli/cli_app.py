"""The application the CLI tests name with `--app tests.cli.cli_app:...`.

Two projectors writing read-model tables: `Inventory` (one row per stream) and
`Ledger` (one row per event). Their tables go in the PostgreSQL schema named by
`CLI_TEST_READ_MODEL_SCHEMA` (the test's throwaway schema), or nowhere special.
"""

from __future__ import annotations

import os
from typing import ClassVar

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, delete, insert

from eventcore import DomainEvent, ProjectionContext, Projector, projects

SCHEMA_ENV = "CLI_TEST_READ_MODEL_SCHEMA"


class ItemAdded(DomainEvent, type_name="test_cli.ItemAdded"):
    """An item was put on a shelf (the stream)."""

    sku: str
    quantity: int


class ItemRemoved(DomainEvent, type_name="test_cli.ItemRemoved"):
    """The shelf was emptied."""

    sku: str


def read_model(schema: str | None = None) -> MetaData:
    """The read-model tables, `items` and `ledger`, in `schema`."""
    metadata = MetaData(schema=schema)
    Table(
        "cli_test_items",
        metadata,
        Column("stream_id", String(100), primary_key=True),
        Column("sku", String(100), nullable=False),
        Column("quantity", Integer, nullable=False),
    )
    Table(
        "cli_test_ledger",
        metadata,
        Column("global_position", BigInteger, primary_key=True),
        Column("event_type", String(100), nullable=False),
    )
    return metadata


def _table(metadata: MetaData, name: str) -> Table:
    return metadata.tables[f"{metadata.schema}.{name}" if metadata.schema else name]


class Inventory(Projector, name="cli_test.inventory"):
    """What is on each shelf."""

    def __init__(self) -> None:
        self.items = _table(read_model(os.environ.get(SCHEMA_ENV)), "cli_test_items")

    @projects
    async def _added(self, event: ItemAdded, context: ProjectionContext) -> None:
        row = {
            "stream_id": context.recorded.stream_id,
            "sku": event.sku,
            "quantity": event.quantity,
        }
        await context.connection.execute(insert(self.items).values(row))

    @projects
    async def _removed(self, event: ItemRemoved, context: ProjectionContext) -> None:
        stream_id = context.recorded.stream_id
        await context.connection.execute(
            delete(self.items).where(self.items.c.stream_id == stream_id)
        )


class Ledger(Projector, name="cli_test.ledger"):
    """Every event's position and type."""

    def __init__(self) -> None:
        self.ledger = _table(read_model(os.environ.get(SCHEMA_ENV)), "cli_test_ledger")

    @projects
    async def _added(self, event: ItemAdded, context: ProjectionContext) -> None:
        await self._record(context)

    @projects
    async def _removed(self, event: ItemRemoved, context: ProjectionContext) -> None:
        await self._record(context)

    async def _record(self, context: ProjectionContext) -> None:
        recorded = context.recorded
        row = {"global_position": recorded.global_position, "event_type": recorded.event_type}
        await context.connection.execute(insert(self.ledger).values(row))


class Broken(Projector, name="cli_test.broken"):
    """Fails on every `ItemAdded`: it stops after its retries."""

    @projects
    async def _added(self, event: ItemAdded, context: ProjectionContext) -> None:
        raise RuntimeError(f"cannot handle {event.sku}")


class Picky(Projector, name="cli_test.picky", on_failure="park"):
    """Parks the items called `poison` while `refusing` is true."""

    refusing: ClassVar[bool] = True

    @projects
    async def _added(self, event: ItemAdded, context: ProjectionContext) -> None:
        if event.sku == "poison" and Picky.refusing:
            raise ValueError("poison is refused")


def projectors() -> list[Projector]:
    """The application's projectors (what `--app tests.cli.cli_app` finds)."""
    return [Inventory(), Ledger()]


def ledger_only() -> Ledger:
    """Just the ledger (a function may return a single projector)."""
    return Ledger()


broken = [Broken()]
picky = [Picky()]
not_projectors = ["Inventory"]
