"""The events and helpers the event store contract suite uses.

The events join the process-wide `default_registry` under names starting with
`eventcore.contract.`, so they never clash with an application's own event types.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert

from eventcore import (
    DomainEvent,
    EventStore,
    InMemoryEventStore,
    NewEvent,
    RecordedEvent,
    SqlAlchemyEventStore,
    upcaster,
)

__all__ = [
    "ContractBlob",
    "ContractNoted",
    "ContractOpened",
    "ContractRenamed",
    "default_write_raw",
    "notes",
    "read_everything",
]


class ContractOpened(DomainEvent, type_name="eventcore.contract.Opened"):
    """A stream's first event in the contract suite."""

    name: str


class ContractNoted(DomainEvent, type_name="eventcore.contract.Noted"):
    """A small event; most contract tests append these."""

    text: str


class ContractBlob(DomainEvent, type_name="eventcore.contract.Blob"):
    """An event of any size, for the payload limit tests."""

    data: str


class ContractRenamed(DomainEvent, type_name="eventcore.contract.Renamed", version=2):
    """An event at schema version 2; version 1 had no `reason`."""

    name: str
    reason: str


@upcaster(ContractRenamed, from_version=1)
def _renamed_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "reason": "legacy"}


def notes(*texts: str) -> list[NewEvent]:
    """One new `ContractNoted` event per text, each with a fresh event id."""
    return [NewEvent(ContractNoted(text=text)) for text in texts]


async def read_everything(store: EventStore, **kwargs: Any) -> list[RecordedEvent]:
    """Collect `store.read_all(**kwargs)` into a list."""
    return [recorded async for recorded in store.read_all(**kwargs)]


async def default_write_raw(
    store: EventStore, stream_id: str, event_type: str, schema_version: int, data_json: str
) -> None:
    """Store a raw event row in eventcore's own stores, as the next event of the stream."""
    if isinstance(store, InMemoryEventStore):
        store.write_raw(stream_id, event_type, schema_version, data_json)
        return
    if isinstance(store, SqlAlchemyEventStore):
        version = await store.stream_version(stream_id) + 1
        row = {
            "event_id": uuid.uuid4(),
            "stream_id": stream_id,
            "stream_type": "",
            "version": version,
            "event_type": event_type,
            "schema_version": schema_version,
            "data": json.loads(data_json),
            "metadata": {},
            "recorded_at": datetime.now(UTC),
        }
        async with store.engine.begin() as conn:
            await conn.execute(insert(store.tables.events).values(row))
        return
    raise NotImplementedError(
        f"EventStoreContract cannot write a raw row into a {type(store).__name__}: "
        "override its write_raw(store, stream_id, event_type, schema_version, data_json) hook"
    )
