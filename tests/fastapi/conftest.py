"""Fixtures: the test service on each backend, through httpx on its ASGI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from eventcore import EventStore
from eventcore.fastapi import Eventcore
from fastapi import FastAPI
from tests.fastapi._app import Controls, build_app

__all__ = ["Service", "open_section", "service"]

BACKENDS = {"memory": "memory_store", "sqlite": "sqlite_store", "postgres": "postgres_event_store"}


@dataclass
class Service:
    """A running test service: its app, `Eventcore`, controls, store and a client."""

    app: FastAPI
    eventcore: Eventcore
    controls: Controls
    store: EventStore
    client: httpx.AsyncClient
    backend: str
    """`memory`, `sqlite` or `postgres`."""


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> EventStore:
    """Each backend in turn."""
    found: EventStore = request.getfixturevalue(BACKENDS[request.param])
    return found


def backend_of(store: EventStore) -> str:
    """The backend of a fixture's store."""
    engine = getattr(store, "engine", None)
    return (
        "memory" if engine is None else str(engine.dialect.name).replace("postgresql", "postgres")
    )


@pytest.fixture
async def service(store: EventStore) -> AsyncIterator[Service]:
    """The test service, its lifespan running, with an httpx client on its ASGI app."""
    app, eventcore, controls = build_app(store)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        yield Service(app, eventcore, controls, store, client, backend_of(store))


async def open_section(client: httpx.AsyncClient, section_id: str, capacity: int = 3) -> None:
    """Open a section through the API."""
    response = await client.post("/sections", json={"section_id": section_id, "capacity": capacity})
    assert response.status_code == 201, response.text
