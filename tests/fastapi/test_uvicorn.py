"""The test service under a real uvicorn process on a loopback port, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import httpx
import pytest

from eventcore import SqlAlchemyEventStore
from tests.fastapi._sse import SseParser

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """A uvicorn process serving the test app."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.port = _free_port()
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.fastapi._server", *args, str(self.port)],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited: {self.output()}")
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"the server did not get ready: {self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@pytest.fixture(params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """The test app under uvicorn, on a fresh store of each backend."""
    if request.param == "sqlite":
        store: SqlAlchemyEventStore = request.getfixturevalue("sqlite_store")
        args = ["sqlite", str(tmp_path / "events.db")]
    else:
        store = request.getfixturevalue("postgres_event_store")
        url = store.engine.url.render_as_string(hide_password=False)
        args = ["postgres", url, store.tables.schema or "public"]
    running = Server(args, tmp_path / "server.log")
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


@pytest.fixture
async def client(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield http


async def test_statuses_and_problem_bodies_over_http(client: httpx.AsyncClient) -> None:
    created = await client.post("/sections", json={"section_id": "cs101", "capacity": 1})
    assert created.status_code == 201
    assert created.headers["etag"] == '"1"'
    assert created.headers["x-correlation-id"]
    body = {"section_id": "cs101", "capacity": 2}
    statuses = {
        "register": (await client.post("/sections/cs101/registrations",
                                       json={"student_id": "s-1"})).status_code,
        "full": (await client.post("/sections/cs101/registrations",
                                   json={"student_id": "s-2"})).status_code,
        "missing": (await client.get("/sections/none")).status_code,
        "invalid": (await client.post("/sections", json={})).status_code,
        "428": (await client.put("/sections/cs101/capacity", json=body)).status_code,
        "412": (await client.put("/sections/cs101/capacity", json=body,
                                 headers={"If-Match": '"1"'})).status_code,
        "304": (await client.get("/sections/cs101",
                                 headers={"If-None-Match": '"2"'})).status_code,
        "400": (await client.post("/sections/cs101/waitlist",
                                  json={"student_id": "x"})).status_code,
        "500": (await client.post("/crash")).status_code,
    }  # fmt: skip
    assert statuses == {"register": 201, "full": 409, "missing": 404, "invalid": 422,
                        "428": 428, "412": 412, "304": 304, "400": 400, "500": 500}  # fmt: skip
    crash = await client.post("/crash")
    assert crash.headers["content-type"] == "application/problem+json"
    assert "hunter2" not in crash.text

    write = await client.put("/sections/cs101/capacity", json=body, headers={"If-Match": '"2"'})
    assert write.status_code == 200
    # The projection pauses on the next registration (on SQLite it then holds the only
    # write transaction: nothing else is written until it goes on).
    await client.post("/test/projection/pause")
    added = await client.post("/sections/cs101/registrations", json={"student_id": "s-2"})
    position = added.headers["log-position"]
    late = await client.get("/sections/cs101/roster", headers={"Min-Log-Position": position})
    assert late.status_code == 503
    assert late.headers["retry-after"] == "1"
    assert (await client.get("/health/ready")).status_code == 200  # no lag threshold set
    await client.post("/test/projection/open")
    fresh = await client.get("/sections/cs101/roster", headers={"Min-Log-Position": position})
    assert fresh.json() == ["s-1", "s-2"]


async def test_idempotency_keys_over_http(client: httpx.AsyncClient) -> None:
    await client.post("/sections", json={"section_id": "cs101", "capacity": 50})
    key = {"Idempotency-Key": "k-1"}
    await client.post("/test/hold/first")
    statuses: list[int] = []

    async def held() -> None:
        response = await client.post("/sections/cs101/waitlist?hold=first",
                                     json={"student_id": "s-1"}, headers=key)  # fmt: skip
        statuses.append(response.status_code)

    async with anyio.create_task_group() as group:
        group.start_soon(held)
        await anyio.sleep(0.3)
        in_flight = await client.post("/sections/cs101/waitlist?hold=first",
                                      json={"student_id": "s-1"}, headers=key)  # fmt: skip
        assert in_flight.status_code == 409
        await client.post("/test/release/first")
    assert statuses == [201]
    replay = await client.post("/sections/cs101/waitlist?hold=first",
                               json={"student_id": "s-1"}, headers=key)  # fmt: skip
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    other = await client.post("/sections/cs101/waitlist", json={"student_id": "s-2"}, headers=key)
    assert other.status_code == 422

    concurrent: list[int] = []

    async def post() -> None:
        response = await client.post("/sections/cs101/waitlist", json={"student_id": "s-9"},
                                     headers={"Idempotency-Key": "k-2"})  # fmt: skip
        concurrent.append(response.status_code)

    async with anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(post)
    assert set(concurrent) <= {201, 409}
    section = (await client.get("/sections/cs101")).json()
    assert section["students"] == ["s-1", "s-9"]


async def _read_events(client: httpx.AsyncClient, count: int, headers: dict[str, str]) -> list[str]:
    parser = SseParser()
    async with client.stream("GET", "/events", headers=headers) as response:
        assert response.status_code == 200
        async for chunk in response.aiter_bytes():
            parser.feed(chunk)
            ids = [e.id for e in parser.events if e.id is not None]
            if len(ids) >= count:
                return [e.data for e in parser.events if e.id is not None]
    raise AssertionError("the stream ended")


async def test_server_sent_events_resume_after_a_disconnect(client: httpx.AsyncClient) -> None:
    await client.post("/sections", json={"section_id": "cs101", "capacity": 5})
    for student in ("s-1", "s-2"):
        await client.post("/sections/cs101/registrations", json={"student_id": student})
    first = await _read_events(client, 2, {"Last-Event-ID": "1", "Accept": "text/event-stream"})
    assert [json.loads(d)["type"].split(".")[-1] for d in first[:1]] == ["StudentRegistered"]
    await client.post("/sections/cs101/registrations", json={"student_id": "s-3"})
    last_id = str(json.loads(first[1])["position"])
    resumed = await _read_events(client, 1, {"Last-Event-ID": last_id})
    assert json.loads(resumed[0])["data"] == {"student_id": "s-3"}


async def test_shutdown_with_event_streams_open_ends_within_the_grace_period(
    server: Server,
) -> None:
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=server.url, timeout=30))
        streams = [await stack.enter_async_context(http.stream("GET", "/events")) for _ in range(3)]
        chunks = [stream.aiter_bytes() for stream in streams]
        for stream, chunk in zip(streams, chunks, strict=True):
            assert stream.status_code == 200
            assert b"retry" in await anext(chunk)  # the stream is open
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = await anyio.to_thread.run_sync(lambda: server.process.wait(timeout=15))
        took = time.monotonic() - started
        for chunk in chunks:
            async for _ in chunk:  # the rest (keep-alives), until the server closed it
                pass
    # uvicorn shuts down, then re-raises the signal it caught (exit status -SIGTERM).
    assert code in (0, -signal.SIGTERM), server.output()
    assert "Traceback" not in server.output()
    assert took < 5, f"shutdown took {took:.1f} s (the grace period is 5 s)"
