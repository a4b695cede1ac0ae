"""`Repository` on every store: load, save, temporal loads, conflicts, retries, snapshots."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Self

import pytest

from eventcore import (
    Aggregate,
    AggregateError,
    AggregateNotFoundError,
    DomainEvent,
    EventStore,
    RecordedEvent,
    Repository,
    WrongExpectedVersionError,
    apply,
    retry_on_conflict,
)

pytestmark = pytest.mark.anyio


class CounterStarted(DomainEvent, type_name="test_repository.CounterStarted"):
    """A counter was created."""

    label: str


class Incremented(DomainEvent, type_name="test_repository.Incremented"):
    """A counter went up."""

    by: int = 1


class Counter(Aggregate, aggregate_type="test_repository.Counter"):
    """A counter without snapshots."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.label = ""
        self.total = 0
        self.increments: list[int] = []

    @classmethod
    def start(cls, id: str, label: str = "c") -> Self:
        """Create a counter."""
        counter = cls(id)
        counter.record(CounterStarted(label=label))
        return counter

    def increment(self, by: int = 1) -> None:
        """Add `by`."""
        self.record(Incremented(by=by))

    @apply
    def _started(self, event: CounterStarted) -> None:
        self.label = event.label

    @apply
    def _incremented(self, event: Incremented) -> None:
        self.total += event.by
        self.increments.append(event.by)


class SnappyCounter(Counter, aggregate_type="test_repository.SnappyCounter", snapshot_every=5):
    """A counter that is snapshotted every 5 events."""

    def to_snapshot(self) -> Mapping[str, Any]:
        """The state as JSON."""
        return {"label": self.label, "total": self.total, "increments": self.increments}

    def restore_snapshot(self, state: Mapping[str, Any]) -> None:
        """Restore from `to_snapshot`."""
        self.label = state["label"]
        self.total = state["total"]
        self.increments = list(state["increments"])


class SnappyCounterV2(
    SnappyCounter, aggregate_type="test_repository.SnappyCounter", snapshot_version=2
):
    """The same stream type with a new snapshot shape (`count` is new)."""

    def to_snapshot(self) -> Mapping[str, Any]:
        """The state as JSON, with the new `count`."""
        return {**super().to_snapshot(), "count": len(self.increments)}

    def restore_snapshot(self, state: Mapping[str, Any]) -> None:
        """Restore from `to_snapshot`; a v1 snapshot (no `count`) would fail here."""
        super().restore_snapshot(state)
        assert state["count"] == len(self.increments)


class ReadSpy:
    """Records the `from_version` of every `read_stream` call of a store."""

    def __init__(self, store: EventStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.from_versions: list[int] = []
        original = store.read_stream

        async def read_stream(stream_id: str, **kwargs: Any) -> list[RecordedEvent]:
            self.from_versions.append(kwargs.get("from_version", 1))
            return await original(stream_id, **kwargs)

        monkeypatch.setattr(store, "read_stream", read_stream)


async def _counter_at(store: EventStore, cls: type[Counter], id: str, n: int) -> Counter:
    """Add a counter, then save `n - 1` increments one by one (version `n`)."""
    repo = Repository(cls, store)
    counter = cls.start(id)
    await repo.add(counter)
    for by in range(1, n):
        counter.increment(by)
        await repo.save(counter)
    return counter


# -- add, get, save ---------------------------------------------------------------------


async def test_add_get_save(any_store: EventStore) -> None:
    repo = Repository(Counter, any_store)
    counter = Counter.start("c-1", "visits")
    counter.increment(2)
    result = await repo.add(counter)
    assert result is not None
    assert result.next_expected_version == 2
    assert counter.pending_events == ()
    assert counter.committed_version == 2

    loaded = await repo.get("c-1")
    assert (loaded.label, loaded.total, loaded.version) == ("visits", 2, 2)
    loaded.increment(3)
    saved = await repo.save(loaded)
    assert saved is not None
    assert saved.next_expected_version == 3
    assert (await repo.get("c-1")).total == 5

    recorded = await any_store.read_stream("c-1")
    assert {r.stream_type for r in recorded} == {"test_repository.Counter"}
    assert [r.version for r in recorded] == [1, 2, 3]


async def test_save_without_changes_appends_nothing(any_store: EventStore) -> None:
    repo = Repository(Counter, any_store)
    await repo.add(Counter.start("c-1"))
    loaded = await repo.get("c-1")
    assert await repo.save(loaded) is None
    assert await any_store.stream_version("c-1") == 1


async def test_get_unknown_aggregate(any_store: EventStore) -> None:
    with pytest.raises(AggregateNotFoundError, match="'nope' not found") as caught:
        await Repository(Counter, any_store).get("nope")
    assert caught.value.aggregate_type == "test_repository.Counter"
    assert caught.value.aggregate_id == "nope"


async def test_add_refuses_a_loaded_aggregate_and_an_existing_stream(
    any_store: EventStore,
) -> None:
    repo = Repository(Counter, any_store)
    await repo.add(Counter.start("c-1"))
    loaded = await repo.get("c-1")
    with pytest.raises(AggregateError, match="not new"):
        await repo.add(loaded)
    with pytest.raises(WrongExpectedVersionError):
        await repo.add(Counter.start("c-1"))
    assert await any_store.stream_version("c-1") == 1


async def test_repository_checks_the_aggregate_type(any_store: EventStore) -> None:
    repo = Repository(SnappyCounter, any_store)
    with pytest.raises(AggregateError, match="cannot store"):
        await repo.save(Counter.start("c-1"))  # type: ignore[arg-type]
    with pytest.raises(AggregateError, match="not an Aggregate subclass"):
        Repository(int, any_store)  # type: ignore[type-var]


# -- temporal loads ---------------------------------------------------------------------


async def test_get_at_version(any_store: EventStore) -> None:
    await _counter_at(any_store, Counter, "c-1", 4)
    repo = Repository(Counter, any_store)
    past = await repo.get("c-1", at_version=2)
    assert (past.version, past.increments) == (2, [1])
    assert (await repo.get("c-1", at_version=4)).increments == [1, 2, 3]
    with pytest.raises(AggregateNotFoundError, match="at version 5"):
        await repo.get("c-1", at_version=5)


async def test_get_as_of(any_store: EventStore) -> None:
    await _counter_at(any_store, Counter, "c-1", 3)
    first, second, _ = await any_store.read_stream("c-1")
    assert first.recorded_at < second.recorded_at
    repo = Repository(Counter, any_store)
    assert (await repo.get("c-1", as_of=first.recorded_at)).version == 1
    assert (await repo.get("c-1", as_of=second.recorded_at)).increments == [1]
    later = second.recorded_at + timedelta(days=1)
    assert (await repo.get("c-1", as_of=later)).version == 3
    with pytest.raises(AggregateNotFoundError, match="as of"):
        await repo.get("c-1", as_of=first.recorded_at - timedelta(seconds=1))


async def test_an_aggregate_loaded_in_the_past_cannot_be_saved(any_store: EventStore) -> None:
    await _counter_at(any_store, Counter, "c-1", 3)
    repo = Repository(Counter, any_store)
    past = await repo.get("c-1", at_version=1)
    past.increment()
    with pytest.raises(WrongExpectedVersionError):
        await repo.save(past)


# -- optimistic concurrency -------------------------------------------------------------


async def test_stale_save_conflicts(any_store: EventStore) -> None:
    repo = Repository(Counter, any_store)
    await repo.add(Counter.start("c-1"))
    first, second = await repo.get("c-1"), await repo.get("c-1")
    first.increment(1)
    await repo.save(first)
    second.increment(100)
    with pytest.raises(WrongExpectedVersionError) as caught:
        await repo.save(second)
    assert (caught.value.stream_id, caught.value.expected, caught.value.actual) == ("c-1", 1, 2)
    assert (await repo.get("c-1")).increments == [1]
    assert second.pending_events  # still pending: the caller may reload and retry


async def test_update_retries_a_conflict_with_a_fresh_load(any_store: EventStore) -> None:
    repo = Repository(Counter, any_store)
    await repo.add(Counter.start("c-1"))
    seen_versions: list[int] = []

    async def command(counter: Counter) -> None:
        seen_versions.append(counter.version)
        if len(seen_versions) == 1:  # a concurrent writer gets in first
            rival = await repo.get("c-1")
            rival.increment(10)
            await repo.save(rival)
        counter.increment(1)

    updated = await repo.update("c-1", command)
    assert seen_versions == [1, 2]  # the retry saw the rival's event
    assert (updated.version, updated.increments) == (3, [10, 1])
    assert (await repo.get("c-1")).increments == [10, 1]


async def test_update_accepts_a_plain_function(any_store: EventStore) -> None:
    repo = Repository(Counter, any_store)
    await repo.add(Counter.start("c-1"))
    updated = await repo.update("c-1", lambda counter: counter.increment(7))
    assert updated.total == 7
    assert (await repo.get("c-1")).total == 7


async def test_update_gives_up_after_its_attempts(any_store: EventStore) -> None:
    repo = Repository(Counter, any_store)
    await repo.add(Counter.start("c-1"))
    calls = 0

    async def always_overtaken(counter: Counter) -> None:
        nonlocal calls
        calls += 1
        rival = await repo.get("c-1")
        rival.increment(10)
        await repo.save(rival)
        counter.increment(1)

    with pytest.raises(WrongExpectedVersionError):
        await repo.update("c-1", always_overtaken, attempts=3)
    assert calls == 3
    assert (await repo.get("c-1")).increments == [10, 10, 10]


async def test_retry_on_conflict_gives_up_after_attempts() -> None:
    calls = 0

    async def conflicting() -> None:
        nonlocal calls
        calls += 1
        raise WrongExpectedVersionError("s", calls, calls + 1)

    with pytest.raises(WrongExpectedVersionError, match="expected version 4") as caught:
        await retry_on_conflict(conflicting, attempts=4, base_delay=0)
    assert calls == 4
    assert caught.value.expected == 4


async def test_retry_on_conflict_does_not_retry_other_errors() -> None:
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise KeyError("boom")

    with pytest.raises(KeyError):
        await retry_on_conflict(broken)
    assert calls == 1
    with pytest.raises(ValueError, match="attempts"):
        await retry_on_conflict(broken, attempts=0)


# -- snapshots --------------------------------------------------------------------------


async def test_snapshots_are_written_every_n_events(any_store: EventStore) -> None:
    await _counter_at(any_store, SnappyCounter, "s-1", 4)
    assert await any_store.snapshots.get("s-1") is None
    counter = await _counter_at(any_store, SnappyCounter, "s-2", 12)
    snapshot = await any_store.snapshots.get("s-2")
    assert snapshot is not None
    assert (snapshot.version, snapshot.schema_version) == (10, 1)
    assert snapshot.aggregate_type == "test_repository.SnappyCounter"
    assert snapshot.state == {"label": "c", "total": 45, "increments": list(range(1, 10))}
    assert snapshot.recorded_at is not None
    assert counter.version == 12


async def test_a_save_crossing_a_multiple_snapshots(any_store: EventStore) -> None:
    repo = Repository(SnappyCounter, any_store)
    counter = SnappyCounter.start("s-1")
    for by in range(1, 7):
        counter.increment(by)
    await repo.add(counter)  # versions 1..7 in one append
    snapshot = await any_store.snapshots.get("s-1")
    assert snapshot is not None
    assert snapshot.version == 7


async def test_load_uses_the_snapshot_and_later_events_only(
    any_store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _counter_at(any_store, SnappyCounter, "s-1", 7)
    spy = ReadSpy(any_store, monkeypatch)
    loaded = await Repository(SnappyCounter, any_store).get("s-1")
    assert spy.from_versions == [6]  # versions 1..5 come from the snapshot
    assert (loaded.version, loaded.committed_version) == (7, 7)
    assert loaded.increments == [1, 2, 3, 4, 5, 6]
    assert loaded.total == 21


async def test_load_at_the_snapshot_version(
    any_store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _counter_at(any_store, SnappyCounter, "s-1", 5)
    spy = ReadSpy(any_store, monkeypatch)
    loaded = await Repository(SnappyCounter, any_store).get("s-1")
    assert spy.from_versions == [6]
    assert (loaded.version, loaded.increments) == (5, [1, 2, 3, 4])


async def test_a_loaded_snapshot_aggregate_saves_and_snapshots_again(
    any_store: EventStore,
) -> None:
    await _counter_at(any_store, SnappyCounter, "s-1", 7)
    repo = Repository(SnappyCounter, any_store)
    loaded = await repo.get("s-1")
    for _ in range(3):
        loaded.increment(100)
    await repo.save(loaded)
    snapshot = await any_store.snapshots.get("s-1")
    assert snapshot is not None
    assert snapshot.version == 10
    assert (await repo.get("s-1")).total == 21 + 300


async def test_snapshot_version_bump_ignores_old_snapshots(
    any_store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _counter_at(any_store, SnappyCounter, "s-1", 7)
    old = await any_store.snapshots.get("s-1")
    assert old is not None
    assert old.schema_version == 1
    spy = ReadSpy(any_store, monkeypatch)
    repo = Repository(SnappyCounterV2, any_store)
    loaded = await repo.get("s-1")
    assert spy.from_versions == [1]  # the v1 snapshot was not used
    assert (loaded.version, loaded.increments) == (7, [1, 2, 3, 4, 5, 6])

    for by in (7, 8, 9):
        loaded.increment(by)
    await repo.save(loaded)  # crosses version 10: a v2 snapshot replaces the v1 one
    new = await any_store.snapshots.get("s-1")
    assert new is not None
    assert (new.version, new.schema_version, new.state["count"]) == (10, 2, 9)
    again = await repo.get("s-1")
    assert spy.from_versions == [1, 11]
    assert again.increments == list(range(1, 10))
    # The old class now ignores the v2 snapshot in turn.
    assert (await Repository(SnappyCounter, any_store).get("s-1")).total == 45
    assert spy.from_versions[-1] == 1


async def test_at_version_before_the_snapshot_ignores_it(
    any_store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _counter_at(any_store, SnappyCounter, "s-1", 8)
    spy = ReadSpy(any_store, monkeypatch)
    repo = Repository(SnappyCounter, any_store)
    past = await repo.get("s-1", at_version=3)
    assert (past.version, past.increments) == (3, [1, 2])
    assert spy.from_versions == [1]
    after = await repo.get("s-1", at_version=7)
    assert (after.version, after.increments) == (7, [1, 2, 3, 4, 5, 6])
    assert spy.from_versions == [1, 6]
    with pytest.raises(AggregateNotFoundError, match="latest version is 8"):
        await repo.get("s-1", at_version=9)


async def test_as_of_ignores_snapshots(
    any_store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _counter_at(any_store, SnappyCounter, "s-1", 6)
    recorded = await any_store.read_stream("s-1")
    spy = ReadSpy(any_store, monkeypatch)
    past = await Repository(SnappyCounter, any_store).get("s-1", as_of=recorded[2].recorded_at)
    assert (past.version, past.increments) == (3, [1, 2])
    assert spy.from_versions == [1]


async def test_a_snapshot_of_another_aggregate_type_is_ignored(
    any_store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _counter_at(any_store, SnappyCounter, "s-1", 6)

    class OtherType(SnappyCounter, aggregate_type="test_repository.Other"):
        pass

    spy = ReadSpy(any_store, monkeypatch)
    loaded = await Repository(OtherType, any_store).get("s-1")
    assert spy.from_versions == [1]
    assert loaded.total == 15
