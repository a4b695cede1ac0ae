"""Event ids and metadata: UUIDv7, message context, causation and correlation."""

from __future__ import annotations

import itertools
import time
import uuid
from datetime import UTC, datetime

import anyio
import anyio.lowlevel
import pytest

from eventcore import (
    Aggregate,
    DomainEvent,
    EventMetadata,
    MessageContext,
    NewEvent,
    RecordedEvent,
    apply,
    caused_by,
    current_context,
    message_context,
    new_event_id,
)


class Pinged(DomainEvent, type_name="test_metadata.Pinged"):
    """Something happened."""

    n: int = 0


class Pinger(Aggregate):
    """Records `Pinged` events."""

    def ping(self, n: int = 0) -> NewEvent:
        """Record one event and return it as pending."""
        self.record(Pinged(n=n))
        return self.pending_events[-1]

    @apply
    def _pinged(self, event: Pinged) -> None:
        pass


def _recorded(metadata: EventMetadata, event_id: uuid.UUID | None = None) -> RecordedEvent:
    return RecordedEvent(
        Pinged(),
        event_id or new_event_id(),
        "pinger-1",
        "Pinger",
        1,
        1,
        datetime.now(UTC),
        "test_metadata.Pinged",
        1,
        metadata,
    )


# -- event ids --------------------------------------------------------------------------


def _millis(event_id: uuid.UUID) -> int:
    return event_id.int >> 80


def test_new_event_id_is_a_uuid7() -> None:
    before = time.time_ns() // 1_000_000
    event_id = new_event_id()
    after = time.time_ns() // 1_000_000
    assert isinstance(event_id, uuid.UUID)
    assert event_id.version == 7
    assert event_id.variant == uuid.RFC_4122
    assert before <= _millis(event_id) <= after
    assert uuid.UUID(str(event_id)) == event_id


def test_new_event_ids_are_unique_and_time_ordered() -> None:
    ids = [new_event_id() for _ in range(2000)]
    start = _millis(ids[-1])
    while _millis(later := new_event_id()) == start:  # wait for the next millisecond
        pass
    ids.append(later)
    assert len(set(ids)) == len(ids)
    millis = [_millis(i) for i in ids]
    assert millis == sorted(millis)
    # The timestamp is the most significant part: across milliseconds, ids sort by time.
    crossings = [(a, b) for a, b in itertools.pairwise(ids) if _millis(a) < _millis(b)]
    assert crossings
    assert all(a < b for a, b in crossings)
    assert max(ids[:-1]) < later


# -- message context --------------------------------------------------------------------


def test_no_context_means_empty_metadata() -> None:
    assert current_context() == MessageContext()
    assert Pinger("p").ping().metadata == EventMetadata()


def test_message_context_sets_metadata_of_recorded_events() -> None:
    pinger = Pinger("p")
    with message_context("cmd-1", actor="alice", tenant="acme", channel="web") as ctx:
        assert current_context() is ctx
        first, second = pinger.ping(1), pinger.ping(2)
    outside = pinger.ping(3)
    for new in (first, second):
        assert new.metadata == EventMetadata(
            correlation_id="cmd-1",
            causation_id="cmd-1",
            actor="alice",
            tenant="acme",
            extra={"channel": "web"},
        )
    assert outside.metadata == EventMetadata()


def test_message_context_with_explicit_correlation_and_uuid_ids() -> None:
    message_id, correlation_id = uuid.uuid4(), uuid.uuid4()
    with message_context(message_id, correlation_id=correlation_id):
        meta = Pinger("p").ping().metadata
    assert meta.causation_id == str(message_id)
    assert meta.correlation_id == str(correlation_id)


def test_nested_context_inherits_correlation_actor_and_tenant() -> None:
    pinger = Pinger("p")
    with message_context("cmd-1", actor="alice", tenant="acme"):
        with message_context("cmd-2"):
            inner = pinger.ping()
        with message_context("cmd-3", actor="bob", tenant="other"):
            overridden = pinger.ping()
        after = pinger.ping()
    assert inner.metadata.causation_id == "cmd-2"
    assert inner.metadata.correlation_id == "cmd-1"
    assert (inner.metadata.actor, inner.metadata.tenant) == ("alice", "acme")
    assert (overridden.metadata.actor, overridden.metadata.tenant) == ("bob", "other")
    assert overridden.metadata.correlation_id == "cmd-1"
    assert after.metadata.causation_id == "cmd-1"  # the outer context is back


def test_nested_context_keeps_an_explicit_outer_correlation() -> None:
    with message_context("cmd-1", correlation_id="conv-9"), message_context("cmd-2"):
        meta = Pinger("p").ping().metadata
    assert (meta.correlation_id, meta.causation_id) == ("conv-9", "cmd-2")


def test_caused_by_propagates_correlation_and_sets_causation() -> None:
    cause = _recorded(EventMetadata(correlation_id="conv-1", actor="alice", tenant="acme"))
    with caused_by(cause):
        meta = Pinger("p").ping().metadata
    assert meta.causation_id == str(cause.event_id)
    assert meta.correlation_id == "conv-1"
    assert (meta.actor, meta.tenant) == ("alice", "acme")


def test_caused_by_an_uncorrelated_event_correlates_with_it() -> None:
    cause = _recorded(EventMetadata())
    with caused_by(cause):
        meta = Pinger("p").ping().metadata
    assert meta.causation_id == meta.correlation_id == str(cause.event_id)


def test_recorded_event_shortcuts() -> None:
    recorded = _recorded(EventMetadata(correlation_id="c", causation_id="d"))
    assert (recorded.correlation_id, recorded.causation_id) == ("c", "d")


def test_metadata_round_trips_through_a_dict() -> None:
    meta = EventMetadata("c", "d", "alice", "acme", {"k": 1})
    assert meta.to_dict() == {
        "correlation_id": "c",
        "causation_id": "d",
        "actor": "alice",
        "tenant": "acme",
        "extra": {"k": 1},
    }
    assert EventMetadata.from_dict(meta.to_dict()) == meta
    assert EventMetadata.from_dict({"unknown": 2}).extra == {"unknown": 2}
    assert EventMetadata.from_dict(None) == EventMetadata()


# -- across awaits and tasks ------------------------------------------------------------


@pytest.mark.anyio
async def test_context_survives_awaits() -> None:
    with message_context("cmd-1", actor="alice"):
        await anyio.lowlevel.checkpoint()
        meta = Pinger("p").ping().metadata
    assert (meta.causation_id, meta.actor) == ("cmd-1", "alice")
    assert current_context() == MessageContext()


@pytest.mark.anyio
async def test_concurrent_tasks_have_isolated_contexts() -> None:
    entered = {name: anyio.Event() for name in ("a", "b")}
    results: dict[str, list[NewEvent]] = {}

    async def handle(name: str, other: str) -> None:
        pinger = Pinger(f"pinger-{name}")
        with message_context(f"cmd-{name}", actor=name):
            entered[name].set()
            await entered[other].wait()  # both contexts are open now
            first = pinger.ping()
            await anyio.lowlevel.checkpoint()
            results[name] = [first, pinger.ping()]
        assert current_context().message_id == "outer"  # the task's copy of the context

    with message_context("outer", tenant="acme"):
        async with anyio.create_task_group() as tg:
            tg.start_soon(handle, "a", "b")
            tg.start_soon(handle, "b", "a")
        assert current_context().message_id == "outer"
    for name in ("a", "b"):
        for new in results[name]:
            assert new.metadata.causation_id == f"cmd-{name}"
            assert new.metadata.actor == name
            assert new.metadata.correlation_id == "outer"
            assert new.metadata.tenant == "acme"
