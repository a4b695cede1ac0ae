"""Read-your-writes under a lagging projection, and Server-Sent Events on the ASGI app."""

from __future__ import annotations

import json

import anyio
import pytest

from tests.fastapi._sse import sse_on_app
from tests.fastapi.conftest import Service, open_section

pytestmark = pytest.mark.anyio


async def test_a_read_waits_for_the_projection_to_reach_the_clients_write(
    service: Service,
) -> None:
    client = service.client
    await open_section(client, "cs101")
    await client.post("/test/projection/pause")
    write = await client.post("/sections/cs101/registrations", json={"student_id": "s-1"})
    position = write.headers["log-position"]

    stale = await client.get("/sections/cs101/roster")  # no position given: read at once
    assert stale.json() == []

    results: list[object] = []

    async def read() -> None:
        response = await client.get(
            "/sections/cs101/roster", headers={"Min-Log-Position": position}
        )
        results.append(response.json())

    async with anyio.create_task_group() as group:
        group.start_soon(read)
        await anyio.sleep(0.3)
        assert results == []  # still waiting: the projection lags
        await client.post("/test/projection/open")
    assert results == [["s-1"]]


async def test_a_read_the_projection_does_not_catch_up_with_in_time_is_a_503(
    service: Service,
) -> None:
    client = service.client
    await open_section(client, "cs101")
    await client.post("/test/projection/pause")
    write = await client.post("/sections/cs101/registrations", json={"student_id": "s-1"})
    late = await client.get(
        "/sections/cs101/roster",
        headers={"Min-Log-Position": write.headers["log-position"]},
        timeout=30,
    )
    assert late.status_code == 503
    assert late.headers["retry-after"] == "1"
    assert late.json()["type"] == "urn:eventcore:problem:not-caught-up"
    await client.post("/test/projection/open")

    bad = await client.get("/sections/cs101/roster", headers={"Min-Log-Position": "soon"})
    assert bad.status_code == 422


async def test_server_sent_events_stream_the_log_and_resume_after_a_disconnect(
    service: Service,
) -> None:
    client = service.client
    await open_section(client, "cs101")
    async with sse_on_app(service.app, "/events", {"Last-Event-ID": "0"}) as stream:
        pass  # "0" is no position of the log
    assert stream.status == 400

    async with sse_on_app(service.app, "/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        await client.post("/sections/cs101/registrations", json={"student_id": "s-1"})
        await client.post("/sections/cs101/registrations", json={"student_id": "s-2"})
        first, second = await stream.events(2)
    assert first.event == "tests.fastapi.StudentRegistered"
    assert json.loads(first.data)["data"] == {"student_id": "s-1"}
    assert json.loads(second.data)["stream_id"] == "cs101"
    assert stream.parser.events[0].retry == 100

    # Meanwhile another registration; the client resumes from the last id it saw.
    await client.post("/sections/cs101/registrations", json={"student_id": "s-3"})
    async with sse_on_app(service.app, "/events", {"Last-Event-ID": str(second.id)}) as resumed:
        [third] = await resumed.events(1)
        await anyio.sleep(0.5)
    assert json.loads(third.data)["data"] == {"student_id": "s-3"}
    assert int(third.id or 0) > int(second.id or 0)
    assert len(resumed.data_events) == 1
    assert resumed.comments  # keep-alives while nothing happened


async def test_a_projections_changes_are_sent_once_it_has_applied_them(service: Service) -> None:
    client = service.client
    await open_section(client, "cs101")
    await client.post("/test/projection/pause")
    async with sse_on_app(service.app, "/roster/changes") as stream:
        await client.post("/sections/cs101/registrations", json={"student_id": "s-1"})
        await anyio.sleep(0.5)
        assert stream.data_events == []
        await client.post("/test/projection/open")
        [change] = await stream.events(1)
    assert json.loads(change.data)["data"] == {"student_id": "s-1"}
    assert service.controls.roster["cs101"] == ["s-1"]


async def test_event_streams_end_when_the_service_drains(service: Service) -> None:
    async with sse_on_app(service.app, "/events") as stream:
        await anyio.sleep(0.1)
        service.eventcore.drain()
        with anyio.fail_after(2):
            await stream.ended.wait()
    ready = await service.client.get("/health/ready")
    assert ready.status_code == 503
    assert "draining" in ready.json()["detail"]
