"""Reading events as stored, without their classes: what `log tail` prints."""

from __future__ import annotations

import json
from typing import Any

from eventcore import DomainEvent, EventRegistry

__all__ = ["RawRegistry", "StoredPayload"]


class StoredPayload(DomainEvent, registry=None):
    """An event's payload as stored (its schema version's JSON), not decoded."""

    data: Any


class RawRegistry(EventRegistry):
    """A registry that decodes every event into its stored payload.

    The log can then be read without importing the application's event classes, and
    shows exactly what is stored (older schema versions are not upcast).
    """

    def decode(
        self,
        type_name: str,
        schema_version: int,
        payload: str | bytes,
        stream_id: str = "?",
        version: int = 0,
    ) -> DomainEvent:
        """Wrap the stored JSON payload as it is."""
        return StoredPayload(data=json.loads(payload))
