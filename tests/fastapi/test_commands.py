"""Commands: committed before the response, errors as problem details, nothing leaked."""

from __future__ import annotations

import json

import anyio
import pytest

from eventcore import Repository
from tests.fastapi._app import Section
from tests.fastapi.conftest import Service, open_section

pytestmark = pytest.mark.anyio


async def test_a_command_commits_and_answers_with_etag_and_log_position(service: Service) -> None:
    await open_section(service.client, "cs101")
    response = await service.client.post(
        "/sections/cs101/registrations", json={"student_id": "s-1"}
    )
    assert response.status_code == 201
    assert response.json()["students"] == ["s-1"]
    assert response.headers["etag"] == '"2"'
    position = int(response.headers["log-position"])
    assert position == await service.store.log_head()
    section = await Repository(Section, service.store).get("cs101")
    assert section.students == ["s-1"]


async def test_a_commit_that_fails_after_the_handler_returned_is_answered_and_persists_nothing(
    service: Service,
) -> None:
    if service.backend == "memory":
        pytest.skip("InMemoryEventStore has no transaction: its inline projections run after")
    await open_section(service.client, "cs101")
    head = await service.store.log_head()
    response = await service.client.post(
        "/sections/cs101/registrations", json={"student_id": "boom"}
    )
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 500
    assert "detail" not in body
    assert "secret" not in response.text
    assert "log-position" not in response.headers
    assert await service.store.log_head() == head
    section = await Repository(Section, service.store).get("cs101")
    assert section.students == []


async def test_problem_details_for_each_kind_of_error(service: Service) -> None:
    client = service.client
    await open_section(client, "full", capacity=1)
    assert (await client.post("/sections/full/registrations", json={"student_id": "a"})).is_success

    missing = await client.post("/sections/nope/registrations", json={"student_id": "a"})
    assert missing.status_code == 404
    problem = missing.json()
    assert problem["type"] == "urn:eventcore:problem:not-found"
    assert problem["title"] == "Not found"
    assert problem["instance"] == "/sections/nope/registrations"
    assert problem["correlation_id"] == missing.headers["x-correlation-id"]

    full = await client.post("/sections/full/registrations", json={"student_id": "b"})
    assert full.status_code == 409
    assert full.json()["title"] == "Section full"
    assert full.json()["detail"] == "section full is full (1 seats)"

    exists = await client.post("/sections", json={"section_id": "full", "capacity": 2})
    assert exists.status_code == 409
    assert exists.json()["type"] == "urn:eventcore:problem:wrong-expected-version"

    invalid = await client.post("/sections/full/registrations", json={"student": "b"})
    assert invalid.status_code == 422
    assert invalid.headers["content-type"] == "application/problem+json"
    assert invalid.json()["errors"][0]["loc"] == ["body", "student_id"]

    bad_event = await client.post("/sections/full/bad-event")
    assert bad_event.status_code == 422
    assert bad_event.json()["errors"][0]["loc"] == ["capacity"]
    assert "input" not in bad_event.json()["errors"][0]

    bad_id = await client.post("/sections/%20/registrations", json={"student_id": "b"})
    assert bad_id.status_code == 422
    assert bad_id.json()["type"] == "urn:eventcore:problem:invalid-event"

    no_route = await client.get("/nowhere")
    assert no_route.status_code == 404
    assert no_route.headers["content-type"] == "application/problem+json"

    wrong_method = await client.delete("/sections")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["status"] == 405

    crash = await client.post("/crash")
    assert crash.status_code == 500
    assert crash.json()["title"] == "Internal Server Error"
    assert "hunter2" not in crash.text
    assert "internal" not in crash.text.replace("Internal", "")


async def test_a_write_between_load_and_commit_is_a_409(service: Service) -> None:
    if service.backend == "sqlite":
        pytest.skip("SQLite runs one unit of work at a time: the second waits for the first")
    await open_section(service.client, "cs101")
    service.controls.hold("slow")
    results: dict[str, int] = {}

    async def slow() -> None:
        response = await service.client.post(
            "/sections/cs101/registrations?hold=slow", json={"student_id": "s-1"}
        )
        results["slow"] = response.status_code
        results["slow_body"] = json.loads(response.text)["status"]

    async with anyio.create_task_group() as group:
        group.start_soon(slow)
        await service.controls.reached["slow"].wait()
        fast = await service.client.post(
            "/sections/cs101/registrations", json={"student_id": "s-2"}
        )
        assert fast.status_code == 201
        service.controls.release("slow")
    assert results["slow"] == 409
    section = await Repository(Section, service.store).get("cs101")
    assert section.students == ["s-2"]


async def test_correlation_and_request_ids_go_into_the_events_and_come_back(
    service: Service,
) -> None:
    await open_section(service.client, "cs101")
    response = await service.client.post(
        "/sections/cs101/registrations",
        json={"student_id": "s-1"},
        headers={"X-Correlation-ID": "corr-1", "X-Request-ID": "req-1"},
    )
    assert response.headers["x-correlation-id"] == "corr-1"
    assert response.headers["x-request-id"] == "req-1"
    [*_, last] = await service.store.read_stream("cs101")
    assert last.metadata.correlation_id == "corr-1"
    assert last.metadata.causation_id == "req-1"

    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    traced = await service.client.post(
        "/sections/cs101/registrations", json={"student_id": "s-2"}, headers={"traceparent": trace}
    )
    assert traced.headers["x-correlation-id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    [*_, last] = await service.store.read_stream("cs101")
    assert last.metadata.correlation_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert last.metadata.extra["traceparent"] == trace
