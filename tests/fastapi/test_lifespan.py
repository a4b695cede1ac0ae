"""The lifespan (store, workers, shutdown order), health checks, actors and outages."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest

from eventcore import (
    EventStore,
    InMemoryEventStore,
    IntegrationEvent,
    SchemaError,
    SqlAlchemyEventStore,
    message_for,
    postgres_engine,
    sqlite_engine,
)
from eventcore.fastapi import Eventcore, Readiness, UnitOfWorkDep, set_actor
from fastapi import Depends, FastAPI
from tests.fastapi._app import Section, build_app
from tests.fastapi.conftest import Service, open_section

pytestmark = pytest.mark.anyio


class Recorder:
    """A worker that notes when it starts and stops."""

    def __init__(self, name: str, log: list[str], *, slow_stop: float = 0.0) -> None:
        self.name, self.log, self.slow_stop = name, log, slow_stop

    async def run(self) -> None:
        self.log.append(f"start {self.name}")
        try:
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(self.slow_stop)
            self.log.append(f"stop {self.name}")


class Failing:
    async def run(self) -> None:
        raise RuntimeError("the broker said no")


async def test_workers_start_in_order_and_stop_in_reverse_within_the_grace_period() -> None:
    log: list[str] = []
    workers = [Recorder("projections", log), Recorder("relay", log), Recorder("consumer", log)]
    service = Eventcore(InMemoryEventStore(), workers=workers, grace_period=5.0)
    async with service.lifespan():
        await anyio.sleep(0.05)
        assert log == ["start projections", "start relay", "start consumer"]
    assert log[3:] == ["stop consumer", "stop relay", "stop projections"]


async def test_a_worker_slower_than_the_grace_period_does_not_hold_the_others() -> None:
    log: list[str] = []
    workers = [Recorder("fast", log), Recorder("slow", log, slow_stop=0.6)]
    service = Eventcore(InMemoryEventStore(), workers=workers, grace_period=0.2)
    started = anyio.current_time()
    async with service.lifespan():
        await anyio.sleep(0.05)
    assert anyio.current_time() - started < 5
    assert sorted(log[2:]) == ["stop fast", "stop slow"]


async def test_liveness_fails_when_a_worker_failed_and_readiness_follows() -> None:
    service = Eventcore(InMemoryEventStore(), workers=[Failing()])
    app = FastAPI(lifespan=service.lifespan)
    service.install(app)
    async with app.router.lifespan_context(app), _client(app) as client:
        await anyio.sleep(0.05)
        live = await client.get("/health/live")
        assert live.status_code == 503
        assert live.json()["checks"]["workers"] == {"Failing": "RuntimeError: the broker said no"}
        ready = await client.get("/health/ready")
        assert ready.status_code == 503


async def test_readiness_checks_the_database_projection_lag_and_outbox(store: EventStore) -> None:
    readiness = Readiness(max_projection_lag=0.2, max_outbox_pending=0)
    app, service, _ = build_app(store, readiness=readiness)
    async with app.router.lifespan_context(app), _client(app) as client:
        await open_section(client, "cs101")
        ready = await client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        checks = ready.json()["checks"]
        assert checks["database"]["status"] == "pass"
        assert checks["projections"]["tests.fastapi.roster"]["status"] == "pass"

        await client.post("/test/projection/pause")
        await client.post("/sections/cs101/registrations", json={"student_id": "s-1"})
        for _ in range(200):  # until the unprocessed event is older than 0.2 s
            lagging = await client.get("/health/ready")
            if lagging.status_code != 200:
                break
            await anyio.sleep(0.05)
        assert lagging.status_code == 503
        assert lagging.headers["retry-after"] == "5"
        assert lagging.json()["checks"]["projections"]["tests.fastapi.roster"]["status"] == "fail"
        await client.post("/test/projection/open")
        await service.wait_for(["tests.fastapi.roster"], await store.log_head(), timeout=5)
        assert (await client.get("/health/ready")).status_code == 200

        if isinstance(store, SqlAlchemyEventStore):
            async with store.engine.begin() as conn:
                await store.outbox.write(conn, [message_for(Note(text="hi"), key="k")])
            backlog = await client.get("/health/ready")
            assert backlog.status_code == 503
            assert backlog.json()["checks"]["outbox"]["pending"] == 1


class Note(IntegrationEvent, type_name="tests.fastapi.Note"):
    text: str


async def test_a_database_outage_is_a_503_that_names_nothing_internal() -> None:
    engine = postgres_engine("postgresql+asyncpg://postgres@127.0.0.1:9/nowhere")
    store = SqlAlchemyEventStore(engine)
    app, _, _ = build_app(store)
    try:
        async with _client(app) as client:  # no lifespan: it would refuse to start
            down = await client.get("/sections/cs101")
            assert down.status_code == 503
            assert down.headers["retry-after"] == "1"
            assert down.json()["type"] == "urn:eventcore:problem:store-unavailable"
            assert "127.0.0.1" not in down.text
            assert "detail" not in down.json()
            write = await client.post("/sections/cs101/registrations", json={"student_id": "a"})
            assert write.status_code == 503
            ready = await client.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json()["checks"]["database"] == {"status": "fail"}
    finally:
        await engine.dispose()


async def test_the_lifespan_checks_the_schema_or_creates_it(tmp_path: Path) -> None:
    engine = sqlite_engine(tmp_path / "empty.db")
    try:
        store = SqlAlchemyEventStore(engine)
        with pytest.raises(SchemaError, match="missing tables: eventcore_events"):
            async with Eventcore(store).lifespan():
                pass
        async with Eventcore(store, create_schema=True).lifespan():
            pass
        async with Eventcore(store).lifespan():
            assert await store.log_head() == 0
    finally:
        await engine.dispose()


async def test_the_actor_comes_from_set_actor_or_the_authenticated_user(
    service: Service,
) -> None:
    await open_section(service.client, "cs101")

    async def authenticate() -> None:
        set_actor("registrar-7")

    @service.app.post("/as-registrar/{section_id}", dependencies=[Depends(authenticate)])
    async def as_registrar(section_id: str, uow: UnitOfWorkDep) -> None:
        (await uow.get(Section, section_id)).register("s-9")

    assert (await service.client.post("/as-registrar/cs101")).status_code == 200
    [*_, last] = await service.store.read_stream("cs101")
    assert last.metadata.actor == "registrar-7"


def _client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")
