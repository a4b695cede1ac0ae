"""Idempotency-Key: replay, 422 for another body, 409 in flight, 400 missing, one effect."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import anyio
import httpx
import pytest

from eventcore import EventStore, IdempotencyRecord, Repository, UnitOfWork
from tests.fastapi._app import Section
from tests.fastapi.conftest import Service, open_section

pytestmark = pytest.mark.anyio


async def _students(store: EventStore, section_id: str = "cs101") -> list[str]:
    return (await Repository(Section, store).get(section_id)).students


async def test_the_same_key_and_body_replays_the_first_response(service: Service) -> None:
    client = service.client
    await open_section(client, "cs101")
    headers = {"Idempotency-Key": "k-1"}
    first = await client.post(
        "/sections/cs101/waitlist", json={"student_id": "s-1"}, headers=headers
    )
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    again = await client.post(
        "/sections/cs101/waitlist", json={"student_id": "s-1"}, headers=headers
    )
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert again.headers["etag"] == first.headers["etag"] == '"2"'
    assert again.headers["log-position"] == first.headers["log-position"]
    assert again.headers["content-type"] == first.headers["content-type"]
    assert await _students(service.store) == ["s-1"]


async def test_the_same_key_with_another_body_is_a_422(service: Service) -> None:
    client = service.client
    await open_section(client, "cs101")
    headers = {"Idempotency-Key": "k-1"}
    await client.post("/sections/cs101/waitlist", json={"student_id": "s-1"}, headers=headers)
    other = await client.post(
        "/sections/cs101/waitlist", json={"student_id": "s-2"}, headers=headers
    )
    assert other.status_code == 422
    assert other.json()["type"] == "urn:eventcore:problem:idempotency-key-reused"
    elsewhere = await client.post("/sections/cs101/registrations", json={"student_id": "s-1"},
                                  headers=headers)  # fmt: skip
    assert elsewhere.status_code == 422
    assert await _students(service.store) == ["s-1"]


async def test_a_missing_or_malformed_key_where_required_is_a_400(service: Service) -> None:
    client = service.client
    await open_section(client, "cs101")
    missing = await client.post("/sections/cs101/waitlist", json={"student_id": "s-1"})
    assert missing.status_code == 400
    assert missing.json()["type"] == "urn:eventcore:problem:idempotency-key"
    malformed = await client.post("/sections/cs101/waitlist", json={"student_id": "s-1"},
                                  headers={"Idempotency-Key": "x" * 300})  # fmt: skip
    assert malformed.status_code == 400
    assert await _students(service.store) == []


async def test_a_key_still_in_flight_is_a_409_and_two_concurrent_requests_have_one_effect(
    service: Service,
) -> None:
    client = service.client
    await open_section(client, "cs101")
    service.controls.hold("first")
    headers = {"Idempotency-Key": "k-1"}
    first: list[httpx.Response] = []

    async def slow() -> None:
        first.append(await client.post("/sections/cs101/waitlist?hold=first",
                                       json={"student_id": "s-1"}, headers=headers))  # fmt: skip

    async with anyio.create_task_group() as group:
        group.start_soon(slow)
        await service.controls.reached["first"].wait()
        second = await client.post("/sections/cs101/waitlist?hold=first",
                                   json={"student_id": "s-1"}, headers=headers)  # fmt: skip
        assert second.status_code == 409
        assert second.headers["retry-after"] == "1"
        assert second.json()["type"] == "urn:eventcore:problem:idempotency-key-in-flight"
        service.controls.release("first")
    assert first[0].status_code == 201
    third = await client.post("/sections/cs101/waitlist?hold=first",
                              json={"student_id": "s-1"}, headers=headers)  # fmt: skip
    assert third.headers["idempotent-replayed"] == "true"
    assert await _students(service.store) == ["s-1"]


async def test_many_concurrent_requests_with_one_key_have_one_effect(service: Service) -> None:
    client = service.client
    await open_section(client, "cs101", capacity=50)
    statuses: list[int] = []

    async def post() -> None:
        response = await client.post("/sections/cs101/waitlist", json={"student_id": "s-1"},
                                     headers={"Idempotency-Key": "k-many"})  # fmt: skip
        statuses.append(response.status_code)

    async with anyio.create_task_group() as group:
        for _ in range(10):
            group.start_soon(post)
    assert set(statuses) <= {201, 409}
    assert 201 in statuses
    assert await _students(service.store) == ["s-1"]


async def test_a_failed_request_leaves_its_key_free(service: Service) -> None:
    client = service.client
    await open_section(client, "full", capacity=1)
    await client.post("/sections/full/registrations", json={"student_id": "a"})
    headers = {"Idempotency-Key": "k-1"}
    refused = await client.post(
        "/sections/full/waitlist", json={"student_id": "b"}, headers=headers
    )
    assert refused.status_code == 409
    assert await service.store.idempotency.find("", "k-1") is None  # type: ignore[attr-defined]


async def test_a_key_whose_commit_fails_is_not_stored(service: Service) -> None:
    if service.backend == "memory":
        pytest.skip("InMemoryEventStore has no transaction: its inline projections run after")
    client = service.client
    await open_section(client, "cs101")
    headers = {"Idempotency-Key": "k-boom"}
    failed = await client.post("/sections/cs101/waitlist", json={"student_id": "boom"},
                               headers=headers)  # fmt: skip
    assert failed.status_code == 500
    assert failed.headers["content-type"] == "application/problem+json"
    assert await service.store.idempotency.find("", "k-boom") is None  # type: ignore[attr-defined]
    assert await _students(service.store) == []


async def test_the_store_keeps_records_for_their_retention(store: EventStore) -> None:
    keys = store.idempotency  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    record = IdempotencyRecord("alice", "k", "f", 201, (("etag", '"1"'),), b"{}", now,
                               now + timedelta(seconds=60))  # fmt: skip
    expired = IdempotencyRecord("alice", "old", "f", 201, (), b"", now - timedelta(hours=2),
                                now - timedelta(hours=1))  # fmt: skip
    async with UnitOfWork(store) as uow:
        assert await keys.claim(uow.session, "alice", "k", "f") is None
        await keys.complete(uow.session, record)
        await keys.complete(uow.session, expired)
        await uow.commit()
    assert await keys.find("alice", "k") == record
    assert await keys.find("bob", "k") is None
    assert await keys.find("alice", "old") is None
    async with UnitOfWork(store) as uow:
        assert await keys.claim(uow.session, "alice", "k", "f") == record
    async with UnitOfWork(store) as uow:  # an expired key is new again
        assert await keys.claim(uow.session, "alice", "old", "f") is None
    assert await keys.delete_expired() == 1
    async with UnitOfWork(store) as uow:  # rolled back: never stored
        assert await keys.claim(uow.session, "alice", "k2", "f") is None
        await keys.complete(uow.session, dataclasses.replace(record, key="k2"))
    assert await keys.find("alice", "k2") is None
