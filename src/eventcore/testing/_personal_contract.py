"""`PersonalDataContract`: encryption and crypto-shredding, as every store must do them."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import anyio
import anyio.lowlevel
import pytest

from eventcore import (
    EventStore,
    KeyProvider,
    KeyProviderError,
    LocalKeyProvider,
    NewEvent,
    PersonalDataError,
    PersonalDataKeys,
    ProjectionWorker,
    RecordedEvent,
    Repository,
    SubjectForgotten,
    TamperedDataError,
)
from eventcore.testing._contract_support import ContractNoted
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
    SwappableKeys,
    default_raw_text,
    enrolled,
    fresh_id,
)

__all__ = ["PersonalDataContract", "StoreFactory"]

StoreFactory = Callable[[KeyProvider | None], Awaitable[EventStore]]
"""Makes a store on the test's database with the given key provider (or none)."""

_PERSONAL = (NAME, EMAIL, PHONE)


class PersonalDataContract:
    """The contract test suite of personal data (encryption, forgetting, rotation).

    Subclass it in a test module (the subclass's name must start with `Test`) and
    override the `make_store` fixture: it returns a function that makes a store with
    the given [`KeyProvider`][eventcore.KeyProvider] (or none), every store of one test
    on the same, initially empty, database:

    ```python
    class TestMyStorePersonalData(PersonalDataContract):
        @pytest.fixture
        async def make_store(self) -> AsyncIterator[StoreFactory]:
            async def make(keys: KeyProvider | None) -> MyStore:
                return MyStore(database, key_provider=keys)
            yield make
    ```

    Override [`raw_text`][eventcore.testing.PersonalDataContract.raw_text] for a store
    other than eventcore's: it returns everything the store holds at rest, as text,
    and the suite checks that no personal value is ever in it.
    """

    pytestmark = pytest.mark.anyio

    @pytest.fixture
    async def make_store(self) -> StoreFactory:
        """A function making stores on one fresh database: override it in your subclass."""
        raise NotImplementedError(
            f"{type(self).__name__} must override the `make_store` fixture of PersonalDataContract"
        )

    @pytest.fixture
    def keys(self) -> SwappableKeys:
        """The key provider of the test's store (its keys can be swapped)."""
        return SwappableKeys(LocalKeyProvider.generate("kek-1"))

    @pytest.fixture
    async def store(self, make_store: StoreFactory, keys: SwappableKeys) -> EventStore:
        """A store with `keys` as its key provider."""
        return await make_store(keys)

    async def raw_text(self, store: EventStore) -> str:
        """Everything `store` holds at rest (events, snapshots, deadlines, keys, ...) as
        text. The default reads eventcore's own stores."""
        return await default_raw_text(store)

    async def assert_no_clear_text(self, store: EventStore) -> None:
        """Fail if a personal value of the suite is stored in clear text."""
        raw = await self.raw_text(store)
        assert raw, "raw_text() returned nothing"
        leaked = [value for value in _PERSONAL if value in raw]
        assert not leaked, f"stored in clear text: {leaked}"

    # -- round trips ----------------------------------------------------------------

    async def test_personal_fields_round_trip_and_are_not_stored_in_clear(
        self, store: EventStore
    ) -> None:
        person = fresh_id("p")
        before = datetime.now(UTC) + timedelta(seconds=1)
        await store.append(person, [enrolled(person), NewEvent(ContractNoted(text="plain"))])
        [first, _] = await store.read_stream(person)
        assert first.event == ContractEnrolled(
            person_id=person, name=NAME, email=EMAIL, phone=PHONE, course="cs101"
        )
        [log_first, *_] = await _read_log(store)
        assert log_first.event == first.event
        assert [r.event async for r in store.read_all()][:1] == [first.event]
        [as_of] = await store.read_stream(person, as_of=before, limit=1)
        assert as_of.event == first.event
        await self.assert_no_clear_text(store)

    async def test_a_field_left_none_stays_none(self, store: EventStore) -> None:
        person = fresh_id("p")
        await store.append(person, [enrolled(person, email=None)])
        [recorded] = await store.read_stream(person)
        assert isinstance(recorded.event, ContractEnrolled)
        assert (recorded.event.email, recorded.event.name) == (None, NAME)

    async def test_events_of_many_subjects_in_one_append(self, store: EventStore) -> None:
        stream = fresh_id("section")
        people = [fresh_id(f"p{i}") for i in range(5)]
        await store.append(stream, [enrolled(p, name=f"{NAME} {i}") for i, p in enumerate(people)])
        names = [r.event.name for r in await store.read_stream(stream)]  # type: ignore[attr-defined]
        assert names == [f"{NAME} {i}" for i in range(5)]
        await self.assert_no_clear_text(store)

    async def test_without_a_key_provider_personal_data_is_refused(
        self, make_store: StoreFactory
    ) -> None:
        plain = await make_store(None)
        person = fresh_id("p")
        with pytest.raises(PersonalDataError, match="key provider"):
            await plain.append(person, [enrolled(person)])
        assert await plain.stream_version(person) == 0
        await plain.append(person, [NewEvent(ContractNoted(text="fine"))])  # no personal data

    # -- tampering --------------------------------------------------------------------

    async def test_tampered_ciphertext_is_detected(self, store: EventStore) -> None:
        person = fresh_id("p")
        await store.append(person, [enrolled(person)])
        await store.append(person, [enrolled(person, name="Other")])
        first, second = await store.read_stream(person)
        # Swap the sealed names of two events: each ciphertext is bound to its event.
        raw_first, raw_second = await self.raw_payloads(store, person)
        await self.write_payload(store, person, 1, raw_first.replace(
            _sealed(raw_first, "name"), _sealed(raw_second, "name")))  # fmt: skip
        with pytest.raises(TamperedDataError, match="'name'"):
            await store.read_stream(person)
        flipped = _flip(_sealed(raw_second, "phone"))
        await self.write_payload(store, person, 2, raw_second.replace(
            _sealed(raw_second, "phone"), flipped))  # fmt: skip
        with pytest.raises(TamperedDataError):
            await store.read_stream(person, from_version=2)
        assert first.version == 1
        assert second.version == 2

    async def raw_payloads(self, store: EventStore, stream_id: str) -> list[str]:
        """The stored payloads (JSON text) of a stream, in version order."""
        from eventcore.testing._personal_raw import read_payloads

        return await read_payloads(store, stream_id)

    async def write_payload(
        self, store: EventStore, stream_id: str, version: int, data: str
    ) -> None:
        """Overwrite a stored payload in place (for the tampering tests)."""
        from eventcore.testing._personal_raw import write_payload

        await write_payload(store, stream_id, version, data)

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

    # -- key-encryption keys --------------------------------------------------------

    async def test_a_missing_key_encryption_key_at_start_up(
        self, make_store: StoreFactory, keys: SwappableKeys, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("EVENTCORE_TEST_NO_KEK", raising=False)
        with pytest.raises(KeyProviderError, match="EVENTCORE_TEST_NO_KEK"):
            LocalKeyProvider.from_env("EVENTCORE_TEST_NO_KEK")
        store = await make_store(keys)
        keys.failing = "the KMS is unreachable"
        person = fresh_id("p")
        with pytest.raises(KeyProviderError, match="unreachable"):
            await store.append(person, [enrolled(person)])
        assert await store.stream_version(person) == 0
        assert NAME not in await self.raw_text(store)

    async def test_rotating_the_key_encryption_key(
        self, store: EventStore, keys: SwappableKeys
    ) -> None:
        person = fresh_id("p")
        await store.append(person, [enrolled(person)])
        first, second = keys.text, LocalKeyProvider.generate("kek-2")
        keys.inner = LocalKeyProvider.from_text(f"{second},{first}")
        data_keys = personal(store)
        assert await data_keys.rotate() == 2
        assert await data_keys.rotate() == 0
        keys.inner = LocalKeyProvider.from_text(second)
        data_keys.clear_cache()
        [recorded] = await store.read_stream(person)
        assert recorded.event.name == NAME  # type: ignore[attr-defined]
        assert {row.kek_id for row in await data_keys.status(person) if row.usable} == {"kek-2"}

    async def test_a_lost_key_encryption_key_is_an_error_not_a_forgetting(
        self, store: EventStore, keys: SwappableKeys
    ) -> None:
        person = fresh_id("p")
        await store.append(person, [enrolled(person)])
        keys.inner = LocalKeyProvider.from_text(LocalKeyProvider.generate("kek-9"))
        personal(store).clear_cache()
        with pytest.raises(KeyProviderError, match="kek-1"):
            await store.read_stream(person)


async def _read_log(store: EventStore) -> list[RecordedEvent]:
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


def _sealed(payload: str, field: str) -> str:
    import json

    value = json.loads(payload)[field]
    return str(value["eventcore:pii"])


def _flip(sealed: str) -> str:
    head, body = sealed.split(".", 1)
    raw = bytearray(base64.b64decode(body))
    raw[-1] ^= 1
    return f"{head}.{base64.b64encode(bytes(raw)).decode()}"
