"""Fixtures of the outbox fault tests: a PostgreSQL store with the read model, and each
broker in turn with this test's own names."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Table

from eventcore import SqlAlchemyEventStore
from tests.brokers.conftest import nats_url, rabbitmq_url
from tests.outbox._brokers import BrokerNames
from tests.outbox._model import effects_table, new_suffix

__all__ = ["broker", "effects", "nats_url", "rabbitmq_url"]


@pytest.fixture(
    params=[
        pytest.param("rabbitmq", marks=pytest.mark.rabbitmq),
        pytest.param("nats", marks=pytest.mark.nats),
    ]
)
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[BrokerNames]:
    """RabbitMQ, then NATS: this test's queue or stream, declared, deleted afterwards."""
    kind: str = request.param
    url: str = request.getfixturevalue(f"{kind}_url")
    names = BrokerNames(kind, url, new_suffix())
    await names.declare()
    try:
        yield names
    finally:
        await names.delete()


@pytest.fixture
async def effects(postgres_event_store: SqlAlchemyEventStore) -> Table:
    """The consumer's read model, in the store's throwaway schema."""
    assert postgres_event_store.tables.schema is not None
    table = effects_table(postgres_event_store.tables.schema)
    async with postgres_event_store.engine.begin() as conn:
        await conn.run_sync(table.create)
    return table
