"""`EventStoreContract`: the behaviour every `EventStore` must have, as a pytest suite."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar

import anyio
import anyio.abc
import pytest

from eventcore import (
    AppendSignal,
    DuplicateEventError,
    EventDeserializationError,
    EventMetadata,
    EventStore,
    ExpectedVersion,
    InvalidEventError,
    InvalidStreamIdError,
    LogPosition,
    NewEvent,
    PayloadTooLargeError,
    RecordedEvent,
    Snapshot,
    StreamAppend,
    UnitOfWorkError,
    UnknownEventTypeError,
    UnknownEventVersionError,
    WrongExpectedVersionError,
    message_context,
)
from eventcore.testing._contract_support import (
    ContractBlob,
    ContractNoted,
    ContractOpened,
    ContractRenamed,
    default_write_raw,
    notes,
    read_everything,
)

__all__ = ["EventStoreContract"]

_BAD_STREAM_IDS: list[Any] = ["", "   ", "a\x00b", "tab\there", "x" * 300, 42, None]
_BAD_IDS = pytest.mark.parametrize("bad_id", _BAD_STREAM_IDS, ids=repr)


class EventStoreContract:
    """The contract test suite of [`EventStore`][eventcore.EventStore] implementations.

    Subclass it in a test module (the subclass's name must start with `Test`) and
    override the `store` fixture; every test gets a store of its own, empty and using
    the process-wide `default_registry`:

    ```python
    import pytest
    from eventcore.testing import EventStoreContract

    class TestMyStore(EventStoreContract):
        max_payload_bytes = 64 * 1024  # what the fixture below configures

        @pytest.fixture
        async def store(self) -> AsyncIterator[MyStore]:
            store = MyStore(max_payload_bytes=64 * 1024)
            yield store
            await store.close()
    ```

    The tests are async (`pytest.mark.anyio`): they need the anyio pytest plugin, and
    run on asyncio unless you override the `anyio_backend` fixture.

    Hooks to override:

    - `store` (fixture, required): a fresh, empty store for one test.
    - `max_payload_bytes` (class attribute): the payload limit the store enforces
      (default 1 MiB). A smaller limit makes the payload tests faster.
    - [`write_raw`][eventcore.testing.EventStoreContract.write_raw]: store a row as given,
      for the upcasting and malformed-payload tests. Eventcore's own stores are built in;
      other stores must override it.
    """

    pytestmark = pytest.mark.anyio
    max_payload_bytes: ClassVar[int] = 1024 * 1024

    @pytest.fixture
    async def store(self) -> EventStore:
        """A fresh, empty event store: override this fixture in your subclass."""
        raise NotImplementedError(
            f"{type(self).__name__} must override the `store` fixture of EventStoreContract"
        )

    async def write_raw(
        self,
        store: EventStore,
        stream_id: str,
        event_type: str,
        schema_version: int,
        data_json: str,
    ) -> None:
        """Store an event row exactly as given, as the next event of `stream_id`.

        It must bypass validation and encoding: the payload `data_json` (a JSON object)
        is stored as it is, with `event_type` and `schema_version`, empty metadata and
        a new event id. The default handles `InMemoryEventStore` and
        `SqlAlchemyEventStore`.
        """
        await default_write_raw(store, stream_id, event_type, schema_version, data_json)

    # -- append and read back ---------------------------------------------------------

    async def test_append_and_read_roundtrip(self, store: EventStore) -> None:
        metadata = EventMetadata(
            correlation_id="corr-1",
            causation_id="cmd-1",
            actor="alice",
            tenant="acme",
            extra={"channel": "web", "tags": ["a", 1], "nested": {"ok": True}},
        )
        opened = NewEvent(ContractOpened(name="first"), uuid.uuid4(), metadata)
        noted = NewEvent(ContractNoted(text="second"))
        await store.append("order-1", [opened, noted], stream_type="Order")

        first, second = await store.read_stream("order-1")
        assert first.event == ContractOpened(name="first")
        assert first.event_id == opened.event_id
        assert first.metadata == metadata
        assert (first.correlation_id, first.causation_id) == ("corr-1", "cmd-1")
        assert (first.stream_id, first.stream_type, first.version) == ("order-1", "Order", 1)
        assert (first.event_type, first.schema_version) == ("eventcore.contract.Opened", 1)
        assert first.recorded_at.tzinfo is not None
        assert second.event == ContractNoted(text="second")
        assert second.event_id == noted.event_id
        assert second.metadata == EventMetadata()
        assert second.version == 2

    async def test_metadata_from_message_context_roundtrips(self, store: EventStore) -> None:
        with message_context("cmd-7", correlation_id="conv-1", actor="bob", tenant="t1", via="api"):
            new = NewEvent.of(ContractNoted(text="x"))
        await store.append("s", [new])
        (recorded,) = await store.read_stream("s")
        assert recorded.metadata == EventMetadata(
            correlation_id="conv-1",
            causation_id="cmd-7",
            actor="bob",
            tenant="t1",
            extra={"via": "api"},
        )

    async def test_unicode_payloads_and_stream_ids_roundtrip(self, store: EventStore) -> None:
        text = 'é 中文 🎉 "quotes" \\ back\\slash \n newline'
        await store.append("stream-é-中", [NewEvent(ContractNoted(text=text))])
        (recorded,) = await store.read_stream("stream-é-中")
        assert recorded.event == ContractNoted(text=text)
        assert recorded.stream_id == "stream-é-中"

    async def test_versions_count_from_one_and_positions_increase(self, store: EventStore) -> None:
        first = await store.append("s", notes("a", "b", "c"))
        second = await store.append("s", notes("d", "e"))
        recorded = await store.read_stream("s")
        assert [r.version for r in recorded] == [1, 2, 3, 4, 5]
        positions = [r.global_position for r in recorded]
        assert positions == sorted(set(positions))
        assert (first.next_expected_version, second.next_expected_version) == (3, 5)
        assert first.global_positions + second.global_positions == tuple(positions)
        assert not first.already_stored
        assert [r.event for r in recorded] == [n.event for n in notes("a", "b", "c", "d", "e")]

    async def test_stream_version(self, store: EventStore) -> None:
        assert await store.stream_version("s") == 0
        await store.append("s", notes("a", "b"))
        await store.append("other", notes("c"))
        assert await store.stream_version("s") == 2
        assert await store.stream_version("other") == 1

    # -- expected versions ------------------------------------------------------------

    async def test_any_appends_to_new_and_existing_streams(self, store: EventStore) -> None:
        await store.append("s", notes("a"), expected_version=ExpectedVersion.ANY)
        result = await store.append("s", notes("b"), expected_version=ExpectedVersion.ANY)
        assert result.next_expected_version == 2

    async def test_no_stream(self, store: EventStore) -> None:
        result = await store.append("s", notes("a"), expected_version=ExpectedVersion.NO_STREAM)
        assert result.next_expected_version == 1
        with pytest.raises(WrongExpectedVersionError) as caught:
            await store.append("s", notes("b"), expected_version=ExpectedVersion.NO_STREAM)
        error = caught.value
        assert (error.stream_id, error.expected, error.actual) == (
            "s",
            ExpectedVersion.NO_STREAM,
            1,
        )
        assert await store.stream_version("s") == 1

    async def test_stream_exists(self, store: EventStore) -> None:
        with pytest.raises(WrongExpectedVersionError) as caught:
            await store.append("s", notes("a"), expected_version=ExpectedVersion.STREAM_EXISTS)
        error = caught.value
        assert (error.stream_id, error.expected, error.actual) == (
            "s",
            ExpectedVersion.STREAM_EXISTS,
            0,
        )
        assert await store.read_stream("s") == []
        await store.append("s", notes("a"))
        result = await store.append("s", notes("b"), expected_version=ExpectedVersion.STREAM_EXISTS)
        assert result.next_expected_version == 2

    async def test_exact_version(self, store: EventStore) -> None:
        await store.append("s", notes("a"), expected_version=0)
        result = await store.append("s", notes("b", "c"), expected_version=1)
        assert result.next_expected_version == 3
        for wrong in (0, 2, 4):
            with pytest.raises(WrongExpectedVersionError) as caught:
                await store.append("s", notes("d"), expected_version=wrong)
            error = caught.value
            assert (error.stream_id, error.expected, error.actual) == ("s", wrong, 3)
        assert await store.stream_version("s") == 3

    @pytest.mark.parametrize("bad", [-1, True, "1", 1.0])
    async def test_invalid_expected_version_is_refused(self, store: EventStore, bad: Any) -> None:
        with pytest.raises(InvalidEventError):
            await store.append("s", notes("a"), expected_version=bad)
        assert await read_everything(store) == []

    async def test_empty_append_checks_the_version_only(self, store: EventStore) -> None:
        result = await store.append("new", [], expected_version=ExpectedVersion.NO_STREAM)
        assert (result.next_expected_version, result.global_positions) == (0, ())
        assert await store.stream_version("new") == 0
        await store.append("s", notes("a", "b"))
        result = await store.append("s", [], expected_version=2)
        assert (result.next_expected_version, result.global_positions) == (2, ())
        assert not result.already_stored
        with pytest.raises(WrongExpectedVersionError) as caught:
            await store.append("s", [], expected_version=1)
        assert caught.value.actual == 2
        assert len(await read_everything(store)) == 2

    # -- atomicity --------------------------------------------------------------------

    async def test_a_conflicting_append_writes_none_of_its_events(self, store: EventStore) -> None:
        await store.append("s", notes("a"))
        with pytest.raises(WrongExpectedVersionError):
            await store.append("s", notes("b", "c", "d"), expected_version=0)
        assert [r.event for r in await store.read_stream("s")] == [ContractNoted(text="a")]

    async def test_append_streams_writes_every_stream(self, store: EventStore) -> None:
        await store.append("b", notes("b1"))
        results = await store.append_streams(
            [
                StreamAppend("a", notes("a1", "a2"), ExpectedVersion.NO_STREAM, "A"),
                StreamAppend("b", notes("b2"), 1, "B"),
            ]
        )
        assert [(r.stream_id, r.next_expected_version) for r in results] == [("a", 2), ("b", 2)]
        assert [r.stream_type for r in await store.read_stream("a")] == ["A", "A"]
        logged = await read_everything(store)
        assert [r.global_position for r in logged][1:] == [
            *results[0].global_positions,
            *results[1].global_positions,
        ]

    async def test_append_streams_of_many_streams_in_one_call(self, store: EventStore) -> None:
        """Hundreds of streams at once (a bulk load), some new and some existing."""
        await store.append_streams([StreamAppend(f"old-{n}", notes("x")) for n in range(600)])
        appends = [StreamAppend(f"old-{n}", notes("y", "z"), 1) for n in range(600)]
        appends += [
            StreamAppend(f"new-{n}", notes("a"), ExpectedVersion.NO_STREAM) for n in range(600)
        ]
        results = await store.append_streams(appends)
        assert [r.next_expected_version for r in results] == [3] * 600 + [1] * 600
        positions = [p for r in results for p in r.global_positions]
        assert positions == sorted(positions)
        assert len(set(positions)) == 1800
        assert [r.version for r in await store.read_stream("old-599")] == [1, 2, 3]
        assert [r.global_position for r in await store.read_stream("new-0")] == [positions[1200]]

    async def test_append_streams_is_all_or_nothing(self, store: EventStore) -> None:
        await store.append("c", notes("c1"))
        appends = [
            StreamAppend("a", notes("a1"), ExpectedVersion.NO_STREAM),
            StreamAppend("b", notes("b1", "b2"), ExpectedVersion.ANY),
            StreamAppend("c", notes("c2"), ExpectedVersion.NO_STREAM),
        ]
        with pytest.raises(WrongExpectedVersionError) as caught:
            await store.append_streams(appends)
        error = caught.value
        assert (error.stream_id, error.expected, error.actual) == (
            "c",
            ExpectedVersion.NO_STREAM,
            1,
        )
        assert [r.stream_id for r in await read_everything(store)] == ["c"]
        assert await store.stream_version("a") == await store.stream_version("b") == 0

    async def test_a_stream_twice_in_one_append_is_refused(self, store: EventStore) -> None:
        with pytest.raises(InvalidEventError):
            await store.append_streams(
                [StreamAppend("s", notes("a")), StreamAppend("s", notes("b"))]
            )
        assert await read_everything(store) == []

    async def test_an_event_id_twice_in_one_append_is_refused(self, store: EventStore) -> None:
        (new,) = notes("a")
        with pytest.raises(InvalidEventError):
            await store.append("s", [new, new])
        assert await read_everything(store) == []

    # -- idempotency ------------------------------------------------------------------

    async def test_retrying_an_append_is_idempotent(self, store: EventStore) -> None:
        events = notes("a", "b")
        first = await store.append("s", events, expected_version=ExpectedVersion.NO_STREAM)
        retry = await store.append("s", events, expected_version=ExpectedVersion.NO_STREAM)
        assert retry.already_stored
        assert retry.global_positions == first.global_positions
        assert retry.next_expected_version == 2
        assert len(await store.read_stream("s")) == 2

    async def test_a_late_retry_reports_the_current_version(self, store: EventStore) -> None:
        events = notes("a")
        first = await store.append("s", events, expected_version=0)
        await store.append("s", notes("b", "c"))
        retry = await store.append("s", events, expected_version=0)
        assert retry.already_stored
        assert (retry.global_positions, retry.next_expected_version) == (first.global_positions, 3)
        assert len(await read_everything(store)) == 3

    async def test_retrying_append_streams_is_idempotent(self, store: EventStore) -> None:
        appends = [StreamAppend("a", notes("a1")), StreamAppend("b", notes("b1", "b2"))]
        first = await store.append_streams(appends)
        retry = await store.append_streams(appends)
        assert all(r.already_stored for r in retry)
        assert [r.global_positions for r in retry] == [r.global_positions for r in first]
        assert len(await read_everything(store)) == 3

    async def test_a_partial_overlap_is_a_duplicate(self, store: EventStore) -> None:
        a, b, c = notes("a", "b", "c")
        await store.append("s", [a, b])
        with pytest.raises(DuplicateEventError) as caught:
            await store.append("s", [b, c])
        assert caught.value.stream_id == "s"
        assert caught.value.event_ids == [str(b.event_id)]
        assert [r.event_id for r in await store.read_stream("s")] == [a.event_id, b.event_id]

    async def test_event_ids_of_another_stream_are_duplicates(self, store: EventStore) -> None:
        events = notes("a")
        await store.append("one", events)
        with pytest.raises(DuplicateEventError):
            await store.append("two", events)
        assert await store.read_stream("two") == []

    async def test_a_retry_with_only_some_streams_stored_is_a_duplicate(
        self, store: EventStore
    ) -> None:
        stored = notes("a1")
        await store.append("a", stored)
        appends = [StreamAppend("a", stored), StreamAppend("b", notes("b1"))]
        with pytest.raises(DuplicateEventError):
            await store.append_streams(appends)
        assert await store.read_stream("b") == []

    async def test_a_nul_character_is_refused_before_writing(self, store: EventStore) -> None:
        with pytest.raises(InvalidEventError, match="NUL"):
            await store.append("s", notes("before\x00after"))
        with pytest.raises(InvalidEventError, match="NUL"):
            await store.append(
                "s", [NewEvent(ContractNoted(text="x"), metadata=EventMetadata(actor="\x00"))]
            )
        await store.append("s", notes("a literal \\u0000 is fine"))
        assert [r.event for r in await store.read_stream("s")] == [
            ContractNoted(text="a literal \\u0000 is fine")
        ]

    # -- reading a stream -------------------------------------------------------------

    async def test_read_stream_version_bounds(self, store: EventStore) -> None:
        await store.append("s", notes("1", "2", "3", "4", "5"))

        async def versions(**kwargs: Any) -> list[int]:
            return [r.version for r in await store.read_stream("s", **kwargs)]

        assert await versions(from_version=3) == [3, 4, 5]
        assert await versions(to_version=2) == [1, 2]
        assert await versions(from_version=2, to_version=4) == [2, 3, 4]
        assert await versions(from_version=3, to_version=3) == [3]
        assert await versions(from_version=0) == [1, 2, 3, 4, 5]
        assert await versions(from_version=6) == []
        assert await versions(from_version=4, to_version=2) == []
        assert await versions(to_version=0) == []
        assert await versions(to_version=99) == [1, 2, 3, 4, 5]

    async def test_read_stream_backwards_and_limit(self, store: EventStore) -> None:
        await store.append("s", notes("1", "2", "3", "4", "5"))

        async def versions(**kwargs: Any) -> list[int]:
            return [r.version for r in await store.read_stream("s", **kwargs)]

        assert await versions(backwards=True) == [5, 4, 3, 2, 1]
        assert await versions(limit=2) == [1, 2]
        assert await versions(backwards=True, limit=2) == [5, 4]
        assert await versions(from_version=2, to_version=4, backwards=True, limit=2) == [4, 3]
        assert await versions(limit=0) == []
        assert await versions(limit=10) == [1, 2, 3, 4, 5]

    async def test_read_stream_as_of(self, store: EventStore) -> None:
        await store.append("s", notes("1", "2"))
        await anyio.sleep(0.05)  # so that the next append is recorded at a later time
        await store.append("s", notes("3"))
        everything = await store.read_stream("s")
        cutoff = everything[0].recorded_at
        expected = [r.version for r in everything if r.recorded_at <= cutoff]
        assert expected == [1, 2]
        for as_of in (cutoff, cutoff.astimezone(timezone(timedelta(hours=5, minutes=30)))):
            assert [r.version for r in await store.read_stream("s", as_of=as_of)] == expected
        later = await store.read_stream("s", as_of=cutoff, backwards=True, limit=1)
        assert [r.version for r in later] == [2]
        assert await store.read_stream("s", as_of=cutoff - timedelta(days=1)) == []
        future = datetime.now(UTC) + timedelta(days=1)
        assert len(await store.read_stream("s", as_of=future)) == 3

    async def test_naive_as_of_is_refused(self, store: EventStore) -> None:
        await store.append("s", notes("a"))
        with pytest.raises(InvalidEventError):
            await store.read_stream("s", as_of=datetime(2030, 1, 1))

    async def test_negative_read_bounds_are_refused(self, store: EventStore) -> None:
        bounds: list[dict[str, Any]] = [{"from_version": -1}, {"to_version": -1}, {"limit": -1}]
        for kwargs in bounds:
            with pytest.raises(InvalidEventError):
                await store.read_stream("s", **kwargs)

    async def test_an_unknown_stream_reads_empty(self, store: EventStore) -> None:
        await store.append("known", notes("a"))
        assert await store.read_stream("unknown") == []
        assert await store.read_stream("unknown", backwards=True) == []

    # -- reading the global log -------------------------------------------------------

    async def test_read_all_in_position_order(self, store: EventStore) -> None:
        await store.append("a", notes("a1"))
        await store.append("b", notes("b1", "b2"))
        await store.append("a", notes("a2"))
        logged = await read_everything(store)
        assert [(r.stream_id, r.version) for r in logged] == [
            ("a", 1),
            ("b", 1),
            ("b", 2),
            ("a", 2),
        ]
        positions = [r.global_position for r in logged]
        assert positions == sorted(set(positions))
        assert [r.event for r in logged] == [n.event for n in notes("a1", "b1", "b2", "a2")]

    async def test_read_all_after_a_position(self, store: EventStore) -> None:
        await store.append("s", notes("1", "2", "3", "4"))
        logged = await read_everything(store)
        after_second = await read_everything(store, after=logged[1].global_position)
        assert after_second == logged[2:]
        assert await read_everything(store, after=logged[-1].global_position) == []

    async def test_read_all_crosses_batches(self, store: EventStore) -> None:
        for n in range(7):
            await store.append(f"s-{n % 3}", notes(str(n)))
        logged = await read_everything(store)
        assert len(logged) == 7
        for size in (1, 2, 3, 7, 8):
            assert await read_everything(store, batch_size=size) == logged
        after = logged[2].global_position
        assert await read_everything(store, after=after, batch_size=2) == logged[3:]

    async def test_read_all_filters(self, store: EventStore) -> None:
        await store.append("o-1", [NewEvent(ContractOpened(name="o"))], stream_type="Order")
        await store.append("o-1", notes("n1"), stream_type="Order")
        await store.append("c-1", [NewEvent(ContractOpened(name="c"))], stream_type="Customer")
        await store.append("c-1", notes("n2"), stream_type="Customer")
        await store.append("o-2", notes("n3"), stream_type="Order")
        opened = "eventcore.contract.Opened"

        async def read(**kwargs: Any) -> list[tuple[str, int]]:
            return [(r.stream_id, r.version) for r in await read_everything(store, **kwargs)]

        assert await read(event_types=[opened]) == [("o-1", 1), ("c-1", 1)]
        assert await read(stream_types={"Order"}) == [("o-1", 1), ("o-1", 2), ("o-2", 1)]
        both = await read(event_types=("eventcore.contract.Noted",), stream_types=["Order"])
        assert both == [("o-1", 2), ("o-2", 1)]
        assert await read(stream_types=["Order"], batch_size=1) == await read(
            stream_types=["Order"]
        )
        assert await read(event_types=[]) == []
        assert await read(stream_types=["Nobody"]) == []

    async def test_read_all_refuses_a_batch_size_below_one(self, store: EventStore) -> None:
        await store.append("s", notes("a"))
        with pytest.raises(InvalidEventError):
            await read_everything(store, batch_size=0)

    # -- invalid input ----------------------------------------------------------------

    @_BAD_IDS
    async def test_invalid_stream_ids_are_refused(self, store: EventStore, bad_id: Any) -> None:
        with pytest.raises(InvalidStreamIdError) as caught:
            await store.append(bad_id, notes("a"))
        assert caught.value.stream_id == bad_id
        with pytest.raises(InvalidStreamIdError):
            await store.append_streams([StreamAppend("ok", notes("b")), StreamAppend(bad_id, [])])
        assert await read_everything(store) == []

    @_BAD_IDS
    async def test_invalid_stream_ids_are_refused_on_read(
        self, store: EventStore, bad_id: Any
    ) -> None:
        with pytest.raises(InvalidStreamIdError):
            await store.read_stream(bad_id)
        with pytest.raises(InvalidStreamIdError):
            await store.stream_version(bad_id)

    async def test_a_stream_id_of_255_characters_is_fine(self, store: EventStore) -> None:
        stream_id = "s" * 255
        await store.append(stream_id, notes("a"))
        assert [r.stream_id for r in await store.read_stream(stream_id)] == [stream_id]

    async def test_non_new_events_are_refused(self, store: EventStore) -> None:
        raw: list[Any] = [ContractNoted(text="not wrapped")]
        with pytest.raises(InvalidEventError):
            await store.append("s", raw)
        mixed: list[Any] = [*notes("fine"), "not an event"]
        with pytest.raises(InvalidEventError):
            await store.append("s", mixed)
        assert await read_everything(store) == []

    async def test_a_payload_over_the_limit_is_refused(self, store: EventStore) -> None:
        limit = self.max_payload_bytes
        big = NewEvent(ContractBlob(data="x" * limit))
        with pytest.raises(PayloadTooLargeError) as caught:
            await store.append("s", [*notes("fine"), big])
        error = caught.value
        assert (error.stream_id, error.type_name) == ("s", "eventcore.contract.Blob")
        assert error.limit == limit
        assert error.size > limit
        assert await read_everything(store) == []

    async def test_a_payload_at_the_limit_is_accepted(self, store: EventStore) -> None:
        overhead = len(ContractBlob(data="").model_dump_json().encode())
        exact = ContractBlob(data="x" * (self.max_payload_bytes - overhead))
        await store.append("s", [NewEvent(exact)])
        (recorded,) = await store.read_stream("s")
        assert recorded.event == exact

    async def test_the_payload_limit_counts_bytes(self, store: EventStore) -> None:
        two_byte_chars = "é" * (self.max_payload_bytes // 2)  # fewer characters than bytes
        with pytest.raises(PayloadTooLargeError):
            await store.append("s", [NewEvent(ContractBlob(data=two_byte_chars))])
        assert await read_everything(store) == []

    # -- decoding stored events -------------------------------------------------------

    async def test_old_schema_versions_are_upcast(self, store: EventStore) -> None:
        await self.write_raw(store, "s", "eventcore.contract.Renamed", 1, '{"name": "old"}')
        await store.append("s", [NewEvent(ContractRenamed(name="new", reason="typo"))])
        old, new = await store.read_stream("s")
        assert old.event == ContractRenamed(name="old", reason="legacy")
        assert (old.schema_version, new.schema_version) == (1, 2)
        assert new.event == ContractRenamed(name="new", reason="typo")
        assert [r.event for r in await read_everything(store)] == [old.event, new.event]

    async def test_an_unknown_event_type_fails_to_read(self, store: EventStore) -> None:
        await self.write_raw(store, "s", "eventcore.contract.NoSuchEvent", 1, '{"a": 1}')
        with pytest.raises(UnknownEventTypeError) as caught:
            await store.read_stream("s")
        assert caught.value.type_name == "eventcore.contract.NoSuchEvent"
        with pytest.raises(UnknownEventTypeError):
            await read_everything(store)

    async def test_a_newer_schema_version_fails_to_read(self, store: EventStore) -> None:
        payload = '{"name": "n", "reason": "r"}'
        await self.write_raw(store, "s", "eventcore.contract.Renamed", 3, payload)
        with pytest.raises(UnknownEventVersionError) as caught:
            await store.read_stream("s")
        error = caught.value
        assert (error.type_name, error.stored_version, error.current_version) == (
            "eventcore.contract.Renamed",
            3,
            2,
        )

    async def test_a_malformed_payload_fails_to_read(self, store: EventStore) -> None:
        await store.append("broken-1", notes("fine"))
        await self.write_raw(store, "broken-1", "eventcore.contract.Noted", 1, '{"txt": 1}')
        with pytest.raises(EventDeserializationError) as caught:
            await store.read_stream("broken-1")
        error = caught.value
        assert error.type_name == "eventcore.contract.Noted"
        assert "'broken-1'" in error.location
        assert "version 2" in error.location
        assert error.location in str(error)
        assert len(await store.read_stream("broken-1", to_version=1)) == 1

    # -- sessions (units of work) -----------------------------------------------------

    async def test_session_commit_appends_atomically(self, store: EventStore) -> None:
        await store.append("b", notes("b1"))
        async with store.session() as session:
            assert [r.version for r in await session.read_stream("b")] == [1]
            results = await session.commit(
                [
                    StreamAppend("a", notes("a1"), ExpectedVersion.NO_STREAM),
                    StreamAppend("b", notes("b2"), 1),
                ]
            )
        assert [(r.stream_id, r.next_expected_version) for r in results] == [("a", 1), ("b", 2)]
        assert [(r.stream_id, r.version) for r in await read_everything(store)] == [
            ("b", 1),
            ("a", 1),
            ("b", 2),
        ]

    async def test_leaving_a_session_without_commit_writes_nothing(self, store: EventStore) -> None:
        async with store.session() as session:
            assert await session.read_stream("s") == []
        assert await read_everything(store) == []
        async with store.session() as session:
            await session.rollback()

        async def fail_inside_a_session() -> None:
            async with store.session() as session:
                await session.read_stream("s")
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await fail_inside_a_session()
        assert await read_everything(store) == []
        await store.append("s", notes("a"))  # the sessions released the store
        assert await store.stream_version("s") == 1

    async def test_a_conflicting_session_commit_writes_nothing(self, store: EventStore) -> None:
        await store.append("b", notes("b1"))
        with pytest.raises(WrongExpectedVersionError) as caught:
            async with store.session() as session:
                await session.commit(
                    [
                        StreamAppend("a", notes("a1"), ExpectedVersion.NO_STREAM),
                        StreamAppend("b", notes("b2"), 0),
                    ]
                )
        assert (caught.value.stream_id, caught.value.actual) == ("b", 1)
        assert [r.stream_id for r in await read_everything(store)] == ["b"]
        await store.append("a", notes("a1"), expected_version=ExpectedVersion.NO_STREAM)

    async def test_a_session_commits_once(self, store: EventStore) -> None:
        async with store.session() as session:
            await session.commit([StreamAppend("s", notes("a"))])
            with pytest.raises(UnitOfWorkError):
                await session.commit([StreamAppend("s", notes("b"))])
        assert [r.event for r in await store.read_stream("s")] == [ContractNoted(text="a")]

    # -- snapshots --------------------------------------------------------------------

    async def test_snapshot_roundtrip(self, store: EventStore) -> None:
        assert await store.snapshots.get("s") is None
        taken = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
        state = {"name": "x", "items": [1, 2, {"a": None}], "nested": {"ok": True}}
        await store.snapshots.save(Snapshot("s", "Order", 7, 2, state, taken))
        snapshot = await store.snapshots.get("s")
        assert snapshot == Snapshot("s", "Order", 7, 2, state, taken)
        await store.snapshots.save(Snapshot("t", "Order", 1, 1, {}, None))
        assert await store.snapshots.get("t") == Snapshot("t", "Order", 1, 1, {}, None)

    async def test_the_newer_snapshot_wins(self, store: EventStore) -> None:
        await store.snapshots.save(Snapshot("s", "Order", 5, 1, {"v": 5}))
        await store.snapshots.save(Snapshot("s", "Order", 3, 1, {"v": 3}))
        kept = await store.snapshots.get("s")
        assert kept is not None
        assert (kept.version, kept.state) == (5, {"v": 5})
        await store.snapshots.save(Snapshot("s", "Order", 8, 1, {"v": 8}))
        newest = await store.snapshots.get("s")
        assert newest is not None
        assert (newest.version, newest.state) == (8, {"v": 8})

    # -- the commit-order log, checkpoints and append signals -------------------------

    async def _log_of_four(self, store: EventStore) -> list[RecordedEvent]:
        """Append four events in three appends and return `read_log()` of them."""
        await store.append("a", notes("a1"))
        await store.append("b", notes("b1", "b2"))
        await store.append("a", notes("a2"))
        return await _readable_log(store, 4)

    async def test_read_log_returns_everything_in_commit_order(self, store: EventStore) -> None:
        logged = await self._log_of_four(store)
        assert [(r.stream_id, r.version) for r in logged] == [
            ("a", 1),
            ("b", 1),
            ("b", 2),
            ("a", 2),
        ]
        assert [r.event for r in logged] == [n.event for n in notes("a1", "b1", "b2", "a2")]
        positions = [r.log_position for r in logged]
        assert positions == sorted(set(positions))  # strictly increasing
        for recorded in logged:
            assert recorded.log_position == (recorded.transaction_id, recorded.global_position)
        # One writer at a time: commit order is position order here.
        assert [r.event_id for r in logged] == [r.event_id for r in await read_everything(store)]
        assert await store.read_log() == logged

    async def test_read_log_continues_exactly_after_a_position(self, store: EventStore) -> None:
        logged = await self._log_of_four(store)
        ids = [r.event_id for r in logged]
        for index, recorded in enumerate(logged):
            after = await store.read_log(recorded.log_position)
            assert [r.event_id for r in after] == ids[index + 1 :]
        assert await store.read_log(logged[-1].log_position) == []
        await store.append("c", notes("c1"))
        (new,) = (await _readable_log(store, 5))[4:]
        assert await store.read_log(logged[-1].log_position) == [new]
        assert new.stream_id == "c"
        assert new.log_position > logged[-1].log_position

    async def test_read_log_limit(self, store: EventStore) -> None:
        logged = await self._log_of_four(store)
        ids = [r.event_id for r in logged]
        assert [r.event_id for r in await store.read_log(limit=1)] == ids[:1]
        assert [r.event_id for r in await store.read_log(limit=3)] == ids[:3]
        assert [r.event_id for r in await store.read_log(limit=99)] == ids
        for size in (1, 2, 3):  # a reader that checkpoints each batch sees each event once
            seen: list[RecordedEvent] = []
            while batch := await store.read_log(
                seen[-1].log_position if seen else LogPosition(), limit=size
            ):
                assert len(batch) <= size
                seen.extend(batch)
            assert [r.event_id for r in seen] == ids

    async def test_read_log_filters(self, store: EventStore) -> None:
        await store.append("o-1", [NewEvent(ContractOpened(name="o"))], stream_type="Order")
        await store.append("o-1", notes("n1"), stream_type="Order")
        await store.append("c-1", [NewEvent(ContractOpened(name="c"))], stream_type="Customer")
        await store.append("c-1", notes("n2"), stream_type="Customer")
        await store.append("o-2", notes("n3"), stream_type="Order")
        await _readable_log(store, 5)
        opened, noted = "eventcore.contract.Opened", "eventcore.contract.Noted"

        async def read(after: LogPosition = LogPosition(), **kwargs: Any) -> list[tuple[str, int]]:
            return [(r.stream_id, r.version) for r in await store.read_log(after, **kwargs)]

        assert await read(event_types=[opened]) == [("o-1", 1), ("c-1", 1)]
        assert await read(stream_types={"Order"}) == [("o-1", 1), ("o-1", 2), ("o-2", 1)]
        both = await read(event_types=(noted,), stream_types=["Order"])
        assert both == [("o-1", 2), ("o-2", 1)]
        assert await read(event_types=[]) == []
        assert await read(stream_types=["Nobody"]) == []
        (first,) = await store.read_log(stream_types=["Order"], limit=1)
        assert await read(first.log_position, stream_types=["Order"]) == [("o-1", 2), ("o-2", 1)]
        assert await read(first.log_position, event_types=[noted], limit=1) == [("o-1", 2)]

    @pytest.mark.parametrize("after", [5, (0, 5), None, "0"], ids=repr)
    async def test_read_log_refuses_a_bad_position(self, store: EventStore, after: Any) -> None:
        await store.append("s", notes("a"))
        with pytest.raises(InvalidEventError):
            await store.read_log(after)

    @pytest.mark.parametrize("limit", [0, -1])
    async def test_read_log_refuses_a_limit_below_one(self, store: EventStore, limit: int) -> None:
        await store.append("s", notes("a"))
        with pytest.raises(InvalidEventError):
            await store.read_log(LogPosition(), limit=limit)

    async def test_log_head(self, store: EventStore) -> None:
        assert await store.log_head() == 0
        logged = await self._log_of_four(store)
        assert await store.log_head() == logged[-1].global_position
        result = await store.append("c", notes("c1", "c2"))
        assert await store.log_head() == result.global_positions[-1]

    async def test_log_position_of(self, store: EventStore) -> None:
        assert await store.log_position_of(1) is None
        logged = await self._log_of_four(store)
        for recorded in logged:
            assert await store.log_position_of(recorded.global_position) == recorded.log_position
        head = await store.log_head()
        for unknown in (0, head + 1, head + 1000):
            assert await store.log_position_of(unknown) is None

    async def test_checkpoints_commit_with_the_session(self, store: EventStore) -> None:
        logged = await self._log_of_four(store)
        first, last = logged[0].log_position, logged[-1].log_position
        assert await store.load_checkpoints() == {}
        async with store.session() as session:
            await session.save_checkpoint("reader-a", first)
            await session.save_checkpoint("reader-b", last)
            assert await session.commit([]) == []
        assert await store.load_checkpoints(["reader-a"]) == {"reader-a": first}
        assert await store.load_checkpoints() == {"reader-a": first, "reader-b": last}
        assert await store.load_checkpoints(["reader-b", "nobody"]) == {"reader-b": last}
        assert await store.load_checkpoints(["nobody"]) == {}
        async with store.session() as session:  # a checkpoint moves on
            await session.save_checkpoint("reader-a", last)
            await session.commit([])
        assert await store.load_checkpoints(["reader-a"]) == {"reader-a": last}

    async def test_a_checkpoint_commits_with_the_sessions_events(self, store: EventStore) -> None:
        logged = await self._log_of_four(store)
        async with store.session() as session:
            await session.save_checkpoint("reader", logged[1].log_position)
            await session.commit([StreamAppend("s", notes("x"))])
        assert await store.load_checkpoints() == {"reader": logged[1].log_position}
        assert [r.stream_id for r in await _readable_log(store, 5)][4:] == ["s"]

    async def test_a_checkpoint_without_commit_is_not_saved(self, store: EventStore) -> None:
        logged = await self._log_of_four(store)
        async with store.session() as session:
            await session.save_checkpoint("reader", logged[0].log_position)
            await session.commit([])
        async with store.session() as session:
            await session.save_checkpoint("reader", logged[-1].log_position)
            await session.save_checkpoint("other", logged[-1].log_position)
        async with store.session() as session:
            await session.save_checkpoint("reader", logged[-1].log_position)
            await session.rollback()
        assert await store.load_checkpoints() == {"reader": logged[0].log_position}

    async def test_delete_checkpoint(self, store: EventStore) -> None:
        logged = await self._log_of_four(store)
        async with store.session() as session:
            await session.save_checkpoint("reader", logged[-1].log_position)
            await session.save_checkpoint("other", logged[0].log_position)
            await session.commit([])
        await store.delete_checkpoint("reader")
        await store.delete_checkpoint("nobody")  # forgetting an unknown name is fine
        assert await store.load_checkpoints() == {"other": logged[0].log_position}
        assert await store.load_checkpoints(["reader"]) == {}

    async def test_watch_is_notified_by_an_append(self, store: EventStore) -> None:
        async with store.watch() as signal:
            assert not await signal.wait(0.01)  # nothing was appended yet
            assert await _fired_by(signal, store.append("watched", notes("x")))
            assert await _fired_by(signal, _commit_in_a_session(store, "watched"))
        assert len(await store.read_stream("watched")) == 2


async def _readable_log(store: EventStore, count: int) -> list[RecordedEvent]:
    """`read_log()` from the start, once it returns at least `count` events.

    On PostgreSQL, a transaction still open anywhere on the server (another test's, say)
    holds the log back until it ends: just committed events may take a moment to show.
    """
    with anyio.fail_after(30):
        while True:
            logged = await store.read_log(limit=count + 1)
            if len(logged) >= count:
                return logged
            await anyio.sleep(0.01)


async def _fired_by(signal: AppendSignal, append: Awaitable[object]) -> bool:
    """Whether `signal` wakes a task that waits on it (for up to 30 s) while `append` runs."""
    fired: list[bool] = []

    async def wait(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        task_status.started()  # then waits at once: there is no await in between
        fired.append(await signal.wait(30))

    async with anyio.create_task_group() as group:
        await group.start(wait)
        await append
    return fired == [True]


async def _commit_in_a_session(store: EventStore, stream_id: str) -> None:
    async with store.session() as session:
        await session.commit([StreamAppend(stream_id, notes("y"))])
