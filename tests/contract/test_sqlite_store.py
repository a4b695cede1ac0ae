"""The event store contract, run against `SqlAlchemyEventStore` on SQLite (a temp file)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eventcore import SqlAlchemyEventStore, sqlite_engine
from eventcore.testing import EventStoreContract

PAYLOAD_LIMIT = 64 * 1024


class TestSqliteEventStore(EventStoreContract):
    """Every contract test on a fresh SQLite file (raw rows inserted into its events table)."""

    max_payload_bytes = PAYLOAD_LIMIT

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SqlAlchemyEventStore]:
        """A SQLite store in a temporary file, with a small payload limit."""
        engine = sqlite_engine(tmp_path / "events.db")
        store = SqlAlchemyEventStore(engine, max_payload_bytes=PAYLOAD_LIMIT)
        await store.create_schema()
        yield store
        await store.close()
        await engine.dispose()
