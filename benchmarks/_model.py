"""The domain both sides of the benchmarks work with: a shopping cart and its events.

The events are small and realistic (a few fields). The payload fields of event *i* come
from `item_fields`, so eventcore and the raw baseline store the same data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventcore import Aggregate, DomainEvent, apply

__all__ = [
    "ITEM_ADDED",
    "Cart",
    "ItemAdded",
    "SnapshottedCart",
    "item_dicts",
    "item_events",
    "item_fields",
]

_SKUS = tuple(f"SKU-{i:05d}" for i in range(25))


class ItemAdded(DomainEvent, type_name="benchmarks.ItemAdded"):
    """An item was put in a cart."""

    sku: str
    quantity: int
    unit_price_cents: int
    currency: str


ITEM_ADDED = ItemAdded.event_type_name
"""The stored type name of `ItemAdded` (the raw side stores the same)."""


def item_fields(i: int) -> dict[str, Any]:
    """The payload fields of the *i*-th event of a run."""
    return {
        "sku": _SKUS[i % len(_SKUS)],
        "quantity": 1 + i % 3,
        "unit_price_cents": 499 + i % 250,
        "currency": "EUR",
    }


_PAYLOADS = 5_000  # more than any scenario appends in one round
_DICTS = [item_fields(i) for i in range(_PAYLOADS)]
_EVENTS = [ItemAdded(**fields) for fields in _DICTS]


def item_dicts(start: int, count: int) -> list[dict[str, Any]]:
    """Payloads `start` ... `start + count - 1` as dicts (what the raw side stores).

    Built ahead, like `item_events`: the benchmarks time storing events, not making them.
    """
    return [_DICTS[i % _PAYLOADS] for i in range(start, start + count)]


def item_events(start: int, count: int) -> list[ItemAdded]:
    """The same payloads as `ItemAdded` events (what eventcore stores)."""
    return [_EVENTS[i % _PAYLOADS] for i in range(start, start + count)]


class Cart(Aggregate, aggregate_type="benchmarks.Cart"):
    """A cart: how many of each SKU it holds, and the total price."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.quantities: dict[str, int] = {}
        self.total_cents = 0

    def add_item(self, i: int) -> None:
        """Record the *i*-th item of a run being added."""
        self.record(ItemAdded(**item_fields(i)))

    @apply
    def _added(self, event: ItemAdded) -> None:
        self.quantities[event.sku] = self.quantities.get(event.sku, 0) + event.quantity
        self.total_cents += event.quantity * event.unit_price_cents


class SnapshottedCart(Cart, aggregate_type="benchmarks.SnapshottedCart", snapshot_every=100):
    """A `Cart` that is snapshotted every 100 events."""

    def to_snapshot(self) -> Mapping[str, Any]:
        """The cart's state as JSON-compatible data."""
        return {"quantities": dict(self.quantities), "total_cents": self.total_cents}

    def restore_snapshot(self, state: Mapping[str, Any]) -> None:
        """Restore the state `to_snapshot` returned."""
        self.quantities = dict(state["quantities"])
        self.total_cents = state["total_cents"]
