"""Version 2 of `cli_app`'s inventory, for `projections rebuild` (`--app` this module).

Version 2 of `cli_test.inventory` writes a table of its own, `cli_test_items_v2`, with
a label column version 1 lacks. `projectors` holds both versions, as an application
does during a blue/green rebuild.
"""

from __future__ import annotations

import os
from typing import ClassVar

from sqlalchemy import Column, Integer, MetaData, String, Table, delete, insert

from eventcore import ProjectionContext, Projector, projects
from tests.cli.cli_app import SCHEMA_ENV, Inventory, ItemAdded, ItemRemoved


def read_model_v2(schema: str | None = None) -> MetaData:
    """Version 2's table, `cli_test_items_v2`, in `schema`."""
    metadata = MetaData(schema=schema)
    Table(
        "cli_test_items_v2",
        metadata,
        Column("stream_id", String(100), primary_key=True),
        Column("label", String(200), nullable=False),
        Column("quantity", Integer, nullable=False),
    )
    return metadata


class InventoryV2(Projector, name="cli_test.inventory", version=2):
    """What is on each shelf, with a label; fails on the sku in `failing_on`, if any."""

    failing_on: ClassVar[str | None] = None

    def __init__(self) -> None:
        metadata = read_model_v2(os.environ.get(SCHEMA_ENV))
        self.items = next(iter(metadata.tables.values()))

    @projects
    async def _added(self, event: ItemAdded, context: ProjectionContext) -> None:
        if event.sku == InventoryV2.failing_on:
            raise RuntimeError(f"cannot label {event.sku}")
        row = {
            "stream_id": context.recorded.stream_id,
            "label": f"{event.quantity} x {event.sku}",
            "quantity": event.quantity,
        }
        await context.connection.execute(insert(self.items).values(row))

    @projects
    async def _removed(self, event: ItemRemoved, context: ProjectionContext) -> None:
        stream_id = context.recorded.stream_id
        await context.connection.execute(
            delete(self.items).where(self.items.c.stream_id == stream_id)
        )


def projectors() -> list[Projector]:
    """Both versions of the inventory."""
    return [Inventory(), InventoryV2()]
