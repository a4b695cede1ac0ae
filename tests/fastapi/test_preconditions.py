"""ETag from the stream version; If-Match (412, 428) on writes, If-None-Match (304) on reads."""

from __future__ import annotations

import anyio
import pytest

from eventcore import Repository
from eventcore.fastapi import etag
from eventcore.fastapi._preconditions import if_match_holds, if_none_match_holds, version_of
from tests.fastapi._app import Section
from tests.fastapi.conftest import Service, open_section

pytestmark = pytest.mark.anyio


def test_entity_tags_are_strong_and_compared_as_rfc_9110_says() -> None:
    assert etag(7) == '"7"'
    assert version_of('"7"') == 7
    assert version_of('W/"7"') is None
    assert if_match_holds('"7"', 7)
    assert if_match_holds('"3", "7"', 7)
    assert not if_match_holds('W/"7"', 7)  # If-Match compares strongly
    assert if_match_holds("*", 1)
    assert not if_match_holds("*", 0)
    assert not if_none_match_holds('W/"7"', 7)  # If-None-Match compares weakly
    assert if_none_match_holds('"6"', 7)
    assert if_none_match_holds("*", 0)
    assert not if_none_match_holds("*", 3)


async def test_reads_have_an_etag_and_answer_304_when_the_client_has_it(service: Service) -> None:
    client = service.client
    await open_section(client, "cs101")
    read = await client.get("/sections/cs101")
    assert read.headers["etag"] == '"1"'
    cached = await client.get("/sections/cs101", headers={"If-None-Match": '"1"'})
    assert cached.status_code == 304
    assert cached.headers["etag"] == '"1"'
    assert cached.content == b""
    await client.post("/sections/cs101/registrations", json={"student_id": "s-1"})
    fresh = await client.get("/sections/cs101", headers={"If-None-Match": '"1"'})
    assert fresh.status_code == 200
    assert fresh.headers["etag"] == '"2"'


async def test_if_match_is_the_expected_version_of_a_write(service: Service) -> None:
    client = service.client
    await open_section(client, "cs101")
    body = {"section_id": "cs101", "capacity": 5}

    required = await client.put("/sections/cs101/capacity", json=body)
    assert required.status_code == 428
    assert required.json()["type"] == "urn:eventcore:problem:precondition-required"

    stale = await client.put("/sections/cs101/capacity", json=body, headers={"If-Match": '"7"'})
    assert stale.status_code == 412
    assert stale.json()["type"] == "urn:eventcore:problem:precondition-failed"

    weak = await client.put("/sections/cs101/capacity", json=body, headers={"If-Match": 'W/"1"'})
    assert weak.status_code == 412

    current = await client.put("/sections/cs101/capacity", json=body, headers={"If-Match": '"1"'})
    assert current.status_code == 200
    assert current.headers["etag"] == '"2"'
    again = await client.put("/sections/cs101/capacity", json=body, headers={"If-Match": '"1"'})
    assert again.status_code == 412
    section = await Repository(Section, service.store).get("cs101")
    assert (section.version, section.capacity) == (2, 5)


async def test_optional_if_match_is_honoured_where_sent(service: Service) -> None:
    client = service.client
    await open_section(client, "cs101")
    stale = await client.post(
        "/sections/cs101/registrations", json={"student_id": "s-1"}, headers={"If-Match": '"5"'}
    )
    assert stale.status_code == 412
    ok = await client.post(
        "/sections/cs101/registrations", json={"student_id": "s-1"}, headers={"If-Match": '"1"'}
    )
    assert ok.status_code == 201


async def test_create_only_with_if_none_match_star(service: Service) -> None:
    client = service.client
    body = {"section_id": "cs101", "capacity": 3}
    created = await client.post("/sections", json=body, headers={"If-None-Match": "*"})
    assert created.status_code == 201
    assert created.headers["etag"] == '"1"'
    again = await client.post("/sections", json=body, headers={"If-None-Match": "*"})
    assert again.status_code == 412


async def test_a_write_that_loses_the_race_after_its_if_match_check_is_a_412(
    service: Service,
) -> None:
    if service.backend == "sqlite":
        pytest.skip("SQLite runs one unit of work at a time: the second waits for the first")
    client = service.client
    await open_section(client, "cs101")
    service.controls.hold("slow")
    statuses: list[int] = []

    async def slow() -> None:
        response = await client.put(
            "/sections/cs101/capacity?hold=slow",
            json={"section_id": "cs101", "capacity": 9},
            headers={"If-Match": '"1"'},
        )
        statuses.append(response.status_code)

    async with anyio.create_task_group() as group:
        group.start_soon(slow)
        await service.controls.reached["slow"].wait()
        fast = await client.post("/sections/cs101/registrations", json={"student_id": "s-1"})
        assert fast.status_code == 201
        service.controls.release("slow")
    assert statuses == [412]
    section = await Repository(Section, service.store).get("cs101")
    assert section.capacity == 3
