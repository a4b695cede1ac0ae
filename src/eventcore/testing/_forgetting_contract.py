"""The forgetting half of `PersonalDataContract`: subjects forgotten, and every reader after."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import anyio
import anyio.lowlevel
import pytest

from eventcore import (
    EventStore,
    NewEvent,
    PersonalDataError,
    PersonalDataKeys,
    ProjectionWorker,
    RecordedEvent,
    Repository,
    SubjectForgotten,
)
from eventcore.testing._personal_support import (
    EMAIL,
    FORGOTTEN,
    NAME,
    PHONE,
    ContractEnrolled,
    ContractNicknamed,
    ContractPerson,
    Directory,
    NicknamedV1,
    enrolled,
    fresh_id,
)

__all__ = ["ForgettingContract", "personal", "read_log_when_ready"]


class ForgettingContract:
    """Forgetting subjects (mixed into `PersonalDataContract`, which has the fixtures)."""

    async def raw_text(self, store: EventStore) -> str:
        """Everything `store` holds at rest, as text (see `PersonalDataContract`)."""
        raise NotImplementedError

    async def assert_no_clear_text(self, store: EventStore) -> None:
        """Fail if a personal value is stored in clear text (see `PersonalDataContract`)."""
        raise NotImplementedError

    # -- forgetting -------------------------------------------------------------------

    async def test_a_subject_forgotten_mid_stream(self, store: EventStore) -> None:
        stream, ada, bob = fresh_id("section"), fresh_id("ada"), fresh_id("bob")
        await store.append(stream, [enrolled(ada), enrolled(bob, name="Bob")])
        forgotten = await personal(store).forget(ada, actor="dpo", reason="ticket 17")
        assert isinstance(forgotten, SubjectForgotten)
        assert (forgotten.subject_id, forgotten.actor, forgotten.reason) == (
            ada,
            "dpo",
            "ticket 17",
        )
        assert forgotten.keys_destroyed == 2
        await store.append(stream, [enrolled(bob, name="Bob"), enrolled(ada)])  # after
        events = [r.event for r in await store.read_stream(stream)]
        assert [(e.person_id, e.name, e.email, e.phone) for e in events] == [  # type: ignore[attr-defined]
            (ada, FORGOTTEN, None, ""),
            (bob, "Bob", EMAIL, PHONE),
            (bob, "Bob", EMAIL, PHONE),
            (ada, FORGOTTEN, None, ""),  # appended after: stored as the replacements
        ]
        log = [r.event async for r in store.read_all()]
        assert forgotten in log
        keys = personal(store)
        assert not await keys.has_keys(ada)
        assert await keys.has_keys(bob)
        [anchor, *_] = await keys.status(ada)
        assert (anchor.forgotten_by, anchor.reason) == ("dpo", "ticket 17")
        await self.assert_no_clear_text(store)

    async def test_forgetting_twice_changes_nothing(self, store: EventStore) -> None:
        person = fresh_id("p")
        await store.append(person, [enrolled(person)])
        keys = personal(store)
        assert await keys.forget(person, actor="dpo", reason="first") is not None
        assert await keys.forget(person, actor="dpo", reason="second") is None
        assert await keys.forget(person, actor="dpo", reason="group", group="contact") is None
        told = [r async for r in store.read_all() if isinstance(r.event, SubjectForgotten)]
        assert [r.event.reason for r in told] == ["first"]  # type: ignore[attr-defined]
        [anchor, *_] = await keys.status(person)
        assert anchor.reason == "first"

    async def test_forgetting_one_group(self, store: EventStore) -> None:
        person = fresh_id("p")
        await store.append(person, [enrolled(person)])
        keys = personal(store)
        told = await keys.forget(person, actor="dpo", reason="contact only", group="contact")
        assert told is not None
        assert told.group == "contact"
        [recorded] = await store.read_stream(person)
        event = recorded.event
        assert isinstance(event, ContractEnrolled)
        assert (event.name, event.email, event.phone) == (NAME, None, PHONE)
        assert await keys.has_keys(person)
        assert await keys.forget(person, actor="dpo", reason="all") is not None
        [recorded] = await store.read_stream(person)
        assert recorded.event.name == FORGOTTEN  # type: ignore[attr-defined]

    async def test_forgetting_a_subject_without_data(self, store: EventStore) -> None:
        person = fresh_id("p")
        keys = personal(store)
        assert await keys.forget(person, actor="dpo", reason="never here") is not None
        await store.append(person, [enrolled(person)])  # shredded on arrival
        [recorded] = await store.read_stream(person)
        assert recorded.event.name == FORGOTTEN  # type: ignore[attr-defined]
        assert not await keys.has_keys(person)
        await self.assert_no_clear_text(store)

    async def test_forget_checks_its_arguments(self, store: EventStore) -> None:
        keys = personal(store)
        for bad in ({"actor": "", "reason": "x"}, {"actor": "dpo", "reason": " "}):
            with pytest.raises(PersonalDataError):
                await keys.forget(fresh_id("p"), **bad)
        with pytest.raises(PersonalDataError):
            await keys.forget("", actor="dpo", reason="x")

    async def test_concurrent_appends_while_forgetting(self, store: EventStore) -> None:
        person, other = fresh_id("p"), fresh_id("q")
        await store.append(fresh_id("s"), [enrolled(person)])
        keys = personal(store)
        streams = [fresh_id("s") for _ in range(8)]

        async def write(stream: str) -> None:
            for _ in range(5):
                await store.append(stream, [enrolled(person), enrolled(other)])
                await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as group:
            for stream in streams:
                group.start_soon(write, stream)
            await anyio.lowlevel.checkpoint()
            group.start_soon(lambda: keys.forget(person, actor="dpo", reason="race"))
        for stream in streams:
            for recorded in await store.read_stream(stream):
                event = recorded.event
                assert isinstance(event, ContractEnrolled)
                expected = FORGOTTEN if event.person_id == person else NAME
                assert event.name == expected
        assert not await keys.has_keys(person)
        await self.assert_no_clear_text(store)

    async def test_concurrent_first_appends_share_one_key(self, store: EventStore) -> None:
        person = fresh_id("p")
        streams = [fresh_id("s") for _ in range(10)]
        async with anyio.create_task_group() as group:
            for stream in streams:
                group.start_soon(store.append, stream, [enrolled(person)])
        for stream in streams:
            [recorded] = await store.read_stream(stream)
            assert recorded.event.name == NAME  # type: ignore[attr-defined]
        rows = await personal(store).status(person)
        assert sorted(row.group for row in rows if row.usable) == ["", "contact"]

    # -- readers after forgetting ---------------------------------------------------

    async def test_projections_are_told_and_rebuild_with_replacements(
        self, store: EventStore
    ) -> None:
        ada, bob = fresh_id("ada"), fresh_id("bob")
        await store.append(fresh_id("s"), [enrolled(ada), enrolled(bob, name="Bob")])
        live = Directory()
        worker = ProjectionWorker(store, [live])
        await _catch_up_until(worker, lambda: len(live.names) == 2)
        assert live.names == {ada: NAME, bob: "Bob"}
        await personal(store).forget(ada, actor="dpo", reason="erasure")
        await _catch_up_until(worker, lambda: bool(live.purged))
        assert live.names == {bob: "Bob"}
        assert live.purged == [ada]
        rebuilt = Directory()  # from scratch: a new read model, the checkpoint dropped
        await store.delete_checkpoint(Directory.key)
        await _catch_up_until(ProjectionWorker(store, [rebuilt]), lambda: bool(rebuilt.purged))
        assert rebuilt.names == {bob: "Bob"}

    async def test_snapshots_are_sealed_and_dropped_once_forgotten(self, store: EventStore) -> None:
        person = fresh_id("p")
        people = Repository(ContractPerson, store)
        aggregate = ContractPerson(person)
        aggregate.enrol("cs101")
        aggregate.enrol("cs102")
        await people.add(aggregate)
        snapshot = await store.snapshots.get(person)
        assert snapshot is not None
        assert snapshot.state == {"names": [NAME, NAME]}
        await self.assert_no_clear_text(store)
        assert (await people.get(person)).names == [NAME, NAME]
        await personal(store).forget(person, actor="dpo", reason="erasure")
        assert await store.snapshots.get(person) is None
        assert (await people.get(person)).names == [FORGOTTEN, FORGOTTEN]

    async def test_upcasters_see_opened_values(self, store: EventStore) -> None:
        person, gone = fresh_id("p"), fresh_id("q")
        await store.append(person, [NewEvent(NicknamedV1(person_id=person, nick="Countess"))])
        await store.append(gone, [NewEvent(NicknamedV1(person_id=gone, nick="Countess"))])
        await personal(store).forget(gone, actor="dpo", reason="erasure")
        [kept] = await store.read_stream(person)
        [shredded] = await store.read_stream(gone)
        assert kept.event == ContractNicknamed(person_id=person, nickname="Countess")
        assert shredded.event == ContractNicknamed(person_id=gone, nickname=FORGOTTEN)
        assert (kept.schema_version, "Countess" in await self.raw_text(store)) == (1, False)

    async def test_deadlines_wait_sealed(self, store: EventStore) -> None:
        person = fresh_id("p")
        due = datetime.now(UTC) - timedelta(seconds=1)
        async with store.session() as session:
            await session.schedule_deadline(person, enrolled(person), due)
            await session.commit([])
        await self.assert_no_clear_text(store)
        assert await store.fire_deadlines() == 1
        [recorded] = await store.read_stream(person)
        assert recorded.event.name == NAME  # type: ignore[attr-defined]


async def read_log_when_ready(store: EventStore) -> list[RecordedEvent]:
    """The log, once readable: on PostgreSQL an open transaction anywhere on the server
    holds the gap-free log back for a moment."""
    with anyio.fail_after(10):
        found = await store.read_log()
        while not found:
            await anyio.sleep(0.02)
            found = await store.read_log()
    return found


async def _catch_up_until(worker: ProjectionWorker, done: Callable[[], bool]) -> None:
    with anyio.fail_after(10):
        await worker.catch_up()
        while not done():
            await anyio.sleep(0.02)
            await worker.catch_up()


def personal(store: EventStore) -> PersonalDataKeys:
    """The store's `personal_data` (every store under this suite has one)."""
    keys = getattr(store, "personal_data", None)
    assert isinstance(keys, PersonalDataKeys), f"{type(store).__name__} has no personal_data"
    return keys
