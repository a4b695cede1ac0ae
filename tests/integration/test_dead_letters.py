"""Dead letters: a projector that parks the events it keeps failing on, and replays them.

Every test runs on the in-memory store, SQLite and PostgreSQL. The read model records
which versions of each stream were applied, in the order they were applied, so a
projection that skipped an event, applied one twice or broke a stream's order shows.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import anyio
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, inspect, select

from eventcore import (
    DomainEvent,
    EventStore,
    InMemoryEventStore,
    NewEvent,
    ProjectionContext,
    ProjectionError,
    ProjectionWorker,
    Projector,
    RecordedEvent,
    SqlAlchemyEventStore,
    projects,
)

pytestmark = pytest.mark.anyio


class Deposited(DomainEvent, type_name="test_dead_letters.Deposited"):
    amount: int


class Model:
    """The read model: the versions of each stream in the order they were applied.

    On a SQL store it is a table written on the projection's connection (so it commits
    with the checkpoint); in memory a list that ignores versions it already holds (the
    in-memory store has no transaction to roll a failed batch back).
    """

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.applied: list[tuple[str, int]] = []
        schema = store.tables.schema if isinstance(store, SqlAlchemyEventStore) else None
        self.table = Table(
            "dl_applied",
            MetaData(schema=schema),
            Column("seq", Integer, primary_key=True, autoincrement=True),
            Column("stream_id", String(50), nullable=False),
            Column("version", Integer, nullable=False),
        )

    async def create(self) -> None:
        if isinstance(self.store, SqlAlchemyEventStore):
            async with self.store.engine.begin() as conn:
                await conn.run_sync(self.table.metadata.create_all)

    async def add(self, context: ProjectionContext) -> None:
        r = context.recorded
        if isinstance(self.store, InMemoryEventStore):
            if (r.stream_id, r.version) not in self.applied:
                self.applied.append((r.stream_id, r.version))
            return
        values = {"stream_id": r.stream_id, "version": r.version}
        await context.connection.execute(insert(self.table).values(values))

    async def streams(self) -> dict[str, list[int]]:
        """Each stream's applied versions, in the order they were applied."""
        pairs = self.applied
        if isinstance(self.store, SqlAlchemyEventStore):
            t = self.table
            async with self.store.engine.connect() as conn:
                rows = await conn.execute(select(t.c.stream_id, t.c.version).order_by(t.c.seq))
                pairs = [(stream, version) for stream, version in rows]
        found: dict[str, list[int]] = {}
        for stream, version in pairs:
            found.setdefault(stream, []).append(version)
        return found


class Totals(Projector, name="test_dead_letters.stopping"):
    """Fails on negative amounts while `broken` (the bug the test then fixes)."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.broken = True

    @projects
    async def _deposited(self, event: Deposited, context: ProjectionContext) -> None:
        if event.amount < 0 and self.broken:
            raise ValueError(f"negative amount {event.amount}")
        await self.model.add(context)


class UnorderedTotals(Totals, name="test_dead_letters.unordered", on_failure="park", ordered=False):
    """Parks a failing event; the rest of its stream goes on."""


class OrderedTotals(Totals, name="test_dead_letters.ordered", on_failure="park"):
    """Parks a failing event and, unrun, the later events of its stream."""


@pytest.fixture
async def model(any_store: EventStore) -> Model:
    """An empty read model next to the store."""
    model = Model(any_store)
    await model.create()
    return model


async def deposit(store: EventStore, *pairs: tuple[str, int]) -> list[RecordedEvent]:
    """Append one `Deposited` per (stream, amount), in order; return the log once readable.

    On PostgreSQL the log is readable only below the oldest open transaction of the
    server (other tests' included), so wait until the appended events show.
    """
    ids: set[uuid.UUID] = set()
    for stream, amount in pairs:
        new = NewEvent.of(Deposited(amount=amount))
        await store.append(stream, [new])
        ids.add(new.event_id)
    with anyio.fail_after(60):
        while True:
            logged = await store.read_log(limit=10_000)
            if ids <= {r.event_id for r in logged}:
                return logged
            await anyio.sleep(0.01)


async def serial_replay(store: EventStore) -> dict[str, list[int]]:
    """What a projection that never failed holds: every version of every stream, in order."""
    found: dict[str, list[int]] = {}
    for recorded in await store.read_log(limit=10_000):
        found.setdefault(recorded.stream_id, []).append(recorded.version)
    return found


def worker_for(store: EventStore, projector: Projector) -> ProjectionWorker:
    return ProjectionWorker(store, [projector], batch_size=2, retries=1, retry_delay=0)


async def test_the_stop_policy_still_raises_and_parks_nothing(
    any_store: EventStore, model: Model
) -> None:
    await deposit(any_store, ("a", 1), ("a", -1), ("a", 2))
    worker = worker_for(any_store, Totals(model))
    with pytest.raises(ProjectionError, match=r"stopped: .*failed 2 times.*negative amount -1"):
        await worker.catch_up()
    assert await any_store.list_dead_letters() == []
    assert await any_store.load_checkpoints() == {}
    # The failed batch (a1, a2) was rolled back; in memory there is no transaction.
    rolled_back = {"a": [1]} if isinstance(any_store, InMemoryEventStore) else {}
    assert await model.streams() == rolled_back


async def test_park_parks_the_poison_event_and_continues(
    any_store: EventStore, model: Model
) -> None:
    events = await deposit(any_store, ("a", 1), ("a", -2), ("b", 4), ("a", 3))
    projector = UnorderedTotals(model)

    assert await worker_for(any_store, projector).catch_up() == 4

    [letter] = await any_store.list_dead_letters(projector.name)
    poison = events[1]
    assert (letter.projector, letter.event_id) == (projector.name, poison.event_id)
    assert (letter.stream_id, letter.version, letter.event_type) == ("a", 2, poison.event_type)
    assert letter.log_position == poison.log_position
    assert letter.attempts == 2  # the first try and one retry
    assert "ValueError('negative amount -2')" in letter.error
    assert await model.streams() == {"a": [1, 3], "b": [1]}  # unordered: a3 went on
    checkpoints = await any_store.load_checkpoints([projector.name])
    assert checkpoints[projector.name] == events[-1].log_position


async def test_ordered_parks_later_events_of_the_stream_but_not_of_others(
    any_store: EventStore, model: Model
) -> None:
    projector = OrderedTotals(model)
    worker = worker_for(any_store, projector)  # batches of 2: parking spans batches
    await deposit(any_store, ("a", 1), ("b", 2), ("a", -1), ("b", 3), ("a", 4), ("c", 5))
    await worker.catch_up()
    await deposit(any_store, ("a", 6), ("b", 7))
    await worker.catch_up()

    letters = await any_store.list_dead_letters(projector.name)
    assert [(d.stream_id, d.version, d.attempts) for d in letters] == [
        ("a", 2, 2),
        ("a", 3, 0),  # never run: a2 is parked
        ("a", 4, 0),  # parked by a later catch-up, still behind a2
    ]
    assert "negative amount -1" in letters[0].error
    assert "an earlier event of stream 'a' is parked" in letters[1].error
    assert [d.log_position for d in letters] == sorted(d.log_position for d in letters)
    assert await model.streams() == {"a": [1], "b": [1, 2, 3], "c": [1]}


async def test_replay_after_the_fix_applies_in_stream_order_and_clears_the_table(
    any_store: EventStore, model: Model
) -> None:
    projector = OrderedTotals(model)
    worker = worker_for(any_store, projector)
    await deposit(any_store, ("a", 1), ("a", -1), ("b", -2), ("a", 3), ("b", 4), ("c", 5))
    await worker.catch_up()
    assert len(await any_store.list_dead_letters(projector.name)) == 4

    projector.broken = False  # the handler is fixed and redeployed
    assert await worker.replay_dead_letters(projector.name) == 4

    assert await any_store.list_dead_letters() == []
    assert await model.streams() == {"a": [1, 2, 3], "b": [1, 2], "c": [1]}
    # The streams are free again: their next events are handled, not parked.
    await deposit(any_store, ("a", -7), ("b", 8))
    await worker.catch_up()
    assert await any_store.list_dead_letters() == []
    assert await model.streams() == await serial_replay(any_store)


async def test_a_failed_replay_stays_parked_with_its_attempts_counted(
    any_store: EventStore, model: Model
) -> None:
    projector = OrderedTotals(model)
    worker = worker_for(any_store, projector)
    await deposit(any_store, ("a", -1), ("a", 2), ("b", 3))
    await worker.catch_up()
    before = await any_store.list_dead_letters(projector.name)

    assert await worker.replay_dead_letters(projector.name) == 0  # still broken

    after = await any_store.list_dead_letters(projector.name)
    assert [(d.version, d.attempts) for d in after] == [(1, 3), (2, 0)]  # a2 not tried
    assert after[0].parked_at == before[0].parked_at
    assert "negative amount -1" in after[0].error
    assert await model.streams() == {"b": [1]}


async def test_replay_of_an_unordered_projector_goes_on_past_failures(
    any_store: EventStore, model: Model
) -> None:
    projector = UnorderedTotals(model)
    worker = worker_for(any_store, projector)
    await deposit(any_store, ("a", -1), ("a", 2), ("a", -3))
    await worker.catch_up()
    assert [d.version for d in await any_store.list_dead_letters(projector.name)] == [1, 3]

    assert await worker.replay_dead_letters(projector.name) == 0
    assert [d.attempts for d in await any_store.list_dead_letters(projector.name)] == [3, 3]

    projector.broken = False
    assert await worker.replay_dead_letters(projector.name, stream_id="a") == 2
    assert await model.streams() == {"a": [2, 1, 3]}  # unordered: a2 went first


async def test_discarding_frees_the_stream(any_store: EventStore, model: Model) -> None:
    projector = OrderedTotals(model)
    worker = worker_for(any_store, projector)
    await deposit(any_store, ("a", -1), ("a", 2), ("b", -3))
    await worker.catch_up()

    assert await worker.discard_dead_letters(projector.name, stream_id="a") == 2
    [left] = await any_store.list_dead_letters(projector.name)
    assert left.stream_id == "b"
    await deposit(any_store, ("a", 4))
    await worker.catch_up()
    assert await model.streams() == {"a": [3]}  # a1 and a2 discarded, a3 handled
    assert await worker.discard_dead_letters(projector.name, event_ids=[left.event_id]) == 1
    assert await any_store.list_dead_letters() == []


async def test_a_live_worker_parks_and_keeps_following(any_store: EventStore, model: Model) -> None:
    projector = OrderedTotals(model)
    worker = ProjectionWorker(any_store, [projector], retries=2, retry_delay=0, max_wait=0.05)
    async with anyio.create_task_group() as group:
        group.start_soon(worker.run)
        events = await deposit(any_store, ("a", 1), ("a", -1), ("b", 2), ("a", 3))
        await worker.wait_for(events[-1].log_position)
        group.cancel_scope.cancel()
    letters = await any_store.list_dead_letters(projector.name)
    assert [(d.version, d.attempts) for d in letters] == [(2, 3), (3, 0)]
    assert await model.streams() == {"a": [1], "b": [1]}


async def test_the_read_model_equals_a_serial_replay_in_the_end(
    any_store: EventStore, model: Model
) -> None:
    projector = OrderedTotals(model)
    worker = worker_for(any_store, projector)
    amounts = [5, -1, 7, 2, -4, 9, 1, 3, -6, 8, 2, 2]
    for round_ in range(3):
        streams = [f"s{(round_ * 7 + n * 5) % 4}" for n in range(len(amounts))]
        await deposit(any_store, *zip(streams, amounts, strict=True))
        await worker.catch_up()
    assert await any_store.list_dead_letters(projector.name)
    projector.broken = False
    await worker.replay_dead_letters(projector.name)
    assert await any_store.list_dead_letters() == []
    assert await model.streams() == await serial_replay(any_store)


async def test_sessions_park_count_release_and_find_parked_streams(
    any_store: EventStore,
) -> None:
    first, second, other = await deposit(any_store, ("a", 1), ("a", 2), ("b", 3))
    async with any_store.session() as session:
        await session.park("p", first, "lost")
        await session.rollback()
    assert await any_store.list_dead_letters() == []

    async with any_store.session() as session:
        await session.park("p", second, "boom", attempts=2)
        await session.park("p", first, "boom")
        await session.park("q", other, "bang", attempts=0)
        assert await session.parked_streams("p", ["a", "b", "c"]) == {"a"}
        await session.commit([])
    letters = await any_store.list_dead_letters()
    assert [(d.projector, d.version) for d in letters] == [("p", 1), ("p", 2), ("q", 1)]
    assert [d.event_id for d in await any_store.list_dead_letters("q")] == [other.event_id]
    parked_at = letters[0].parked_at
    assert parked_at.utcoffset() == timedelta(0)

    async with any_store.session() as session:
        await session.park("p", first, "boom again", attempts=1)
        await session.release("p", second.event_id)
        await session.commit([])
    [again] = await any_store.list_dead_letters("p")
    assert (again.event_id, again.error, again.attempts) == (first.event_id, "boom again", 2)
    assert again.parked_at == parked_at


async def test_misuse_is_refused(any_store: EventStore, model: Model) -> None:
    with pytest.raises(ProjectionError, match="on_failure must be 'stop' or 'park'"):
        type("Wrong", (Projector,), {}, on_failure="skip")

    worker = worker_for(any_store, OrderedTotals(model))
    with pytest.raises(ProjectionError, match="no projector named 'nope'"):
        await worker.replay_dead_letters("nope")


async def test_the_dead_letter_table_is_part_of_the_schema(
    sqlite_store: SqlAlchemyEventStore,
) -> None:
    table = sqlite_store.tables.dead_letters
    assert table.name == "eventcore_dead_letters"
    assert [c.name for c in table.primary_key.columns] == ["projector", "event_id"]
    async with sqlite_store.engine.connect() as conn:
        names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
    assert "eventcore_dead_letters" in names
