"""`PersonalDataContract`: encryption and crypto-shredding, as every store must do them."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from eventcore import (
    EventStore,
    KeyProvider,
    KeyProviderError,
    LocalKeyProvider,
    NewEvent,
    PersonalDataError,
    TamperedDataError,
)
from eventcore.testing._contract_support import ContractNoted
from eventcore.testing._forgetting_contract import ForgettingContract, personal, read_log_when_ready
from eventcore.testing._personal_support import (
    EMAIL,
    NAME,
    PHONE,
    ContractEnrolled,
    SwappableKeys,
    default_raw_text,
    enrolled,
    fresh_id,
)

__all__ = ["PersonalDataContract", "StoreFactory"]

StoreFactory = Callable[[KeyProvider | None], Awaitable[EventStore]]
"""Makes a store on the test's database with the given key provider (or none)."""

_PERSONAL = (NAME, EMAIL, PHONE)


class PersonalDataContract(ForgettingContract):
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
        [log_first, *_] = await read_log_when_ready(store)
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
        unknown = "0" * 32 + _sealed(raw_second, "email")[32:]  # a key that never existed
        await self.write_payload(store, person, 2, raw_second.replace(
            _sealed(raw_second, "email"), unknown))  # fmt: skip
        with pytest.raises(TamperedDataError, match="no such key"):
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


def _sealed(payload: str, field: str) -> str:
    import json

    value = json.loads(payload)[field]
    return str(value["eventcore:pii"])


def _flip(sealed: str) -> str:
    head, body = sealed.split(".", 1)
    raw = bytearray(base64.b64decode(body))
    raw[-1] ^= 1
    return f"{head}.{base64.b64encode(bytes(raw)).decode()}"
