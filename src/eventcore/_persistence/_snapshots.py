"""Snapshots: an aggregate's state at a version, so loading need not replay everything."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

__all__ = ["InMemorySnapshotStore", "Snapshot", "SnapshotStore"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An aggregate's state after applying the events up to `version`."""

    stream_id: str
    aggregate_type: str
    version: int
    schema_version: int
    """The aggregate class's `snapshot_version` when it was taken."""
    state: Mapping[str, Any]
    recorded_at: datetime | None = None
    """When the event at `version` was recorded (for temporal loads)."""


@runtime_checkable
class SnapshotStore(Protocol):
    """Keeps the latest snapshot of each stream."""

    async def get(self, stream_id: str) -> Snapshot | None:
        """Return the latest snapshot of `stream_id`, if any."""
        ...

    async def save(self, snapshot: Snapshot) -> None:
        """Store `snapshot`, replacing an older one of the same stream."""
        ...


class InMemorySnapshotStore:
    """A [`SnapshotStore`][eventcore.SnapshotStore] in a dict, for tests and prototypes.

    States go through JSON, as they would in a database, so a state that cannot be
    stored fails here too.
    """

    def __init__(self) -> None:
        self._snapshots: dict[str, tuple[Snapshot, str]] = {}

    async def get(self, stream_id: str) -> Snapshot | None:
        """Return the latest snapshot of `stream_id`, if any."""
        found = self._snapshots.get(stream_id)
        if found is None:
            return None
        snapshot, encoded = found
        return Snapshot(
            snapshot.stream_id,
            snapshot.aggregate_type,
            snapshot.version,
            snapshot.schema_version,
            json.loads(encoded),
            snapshot.recorded_at,
        )

    async def save(self, snapshot: Snapshot) -> None:
        """Store `snapshot` unless a newer one of the same stream is there."""
        current = self._snapshots.get(snapshot.stream_id)
        if current is not None and current[0].version > snapshot.version:
            return
        self._snapshots[snapshot.stream_id] = (snapshot, json.dumps(dict(snapshot.state)))
