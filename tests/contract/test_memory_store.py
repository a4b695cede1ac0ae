"""The event store contract, run against `InMemoryEventStore`."""

from __future__ import annotations

import pytest

from eventcore import InMemoryEventStore
from eventcore.testing import EventStoreContract

PAYLOAD_LIMIT = 64 * 1024


class TestInMemoryEventStore(EventStoreContract):
    """Every contract test on a fresh in-memory store (raw rows via its `write_raw`)."""

    max_payload_bytes = PAYLOAD_LIMIT

    @pytest.fixture
    async def store(self) -> InMemoryEventStore:
        """A fresh in-memory store with a small payload limit."""
        return InMemoryEventStore(max_payload_bytes=PAYLOAD_LIMIT)
