"""Gap-free `read_log` on PostgreSQL under deterministic interleavings of transactions.

Each test drives units of work step by step (begin and take a transaction id, append,
then commit or roll back), holding them open between steps, the way Emmett's and
Marten's regression tests create gaps on purpose. A reader that checkpoints every
event it is given (in the store, as a subscriber would) must see every committed event
exactly once, in (transaction id, position) order, and never an uncommitted one.

The read horizon is the oldest transaction running anywhere on the server, so another
test's transaction can hold the reader back a moment longer: what must appear is
awaited (with a deadline), what must not appear is asserted at once.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from contextlib import suppress

import anyio
import anyio.abc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from eventcore import (
    Aggregate,
    DomainEvent,
    LogPosition,
    NewEvent,
    ProjectionContext,
    Projector,
    RecordedEvent,
    SqlAlchemyEventStore,
    Subscription,
    UnitOfWork,
    apply,
    projects,
)

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

DEADLINE = 30.0  # seconds for what must appear; only a hang ever takes that long


class Noted(DomainEvent, type_name="test_log_ordering.Noted"):
    """Something written down."""

    text: str


class Note(Aggregate, aggregate_type="test_log_ordering.Note"):
    """A stream with one event per transaction."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.texts: list[str] = []

    @classmethod
    def write(cls, id: str, text: str) -> Note:
        """A new note saying `text`."""
        note = cls(id)
        note.record(Noted(text=text))
        return note

    @apply
    def _noted(self, event: Noted) -> None:
        self.texts.append(event.text)


async def _xid(conn: AsyncConnection) -> int:
    """The id of `conn`'s transaction (PostgreSQL assigns one if it has none yet)."""
    xid = await conn.scalar(text("SELECT pg_current_xact_id()::text::bigint"))
    assert isinstance(xid, int)
    return xid


class _RolledBack(Exception):
    """Raised inside a held transaction to roll it back after its append."""


class _Hold(Projector, name="test_log_ordering.Hold"):
    """An inline projection that keeps its transaction open after the append."""

    def __init__(self) -> None:
        self.appended = anyio.Event()
        self.release = anyio.Event()
        self.roll_back = False
        self.position = 0
        self.xid = 0

    @projects
    async def _noted(self, event: Noted, context: ProjectionContext) -> None:
        self.position = context.recorded.global_position
        self.xid = await _xid(context.connection)
        self.appended.set()
        await self.release.wait()
        if self.roll_back:
            raise _RolledBack


class Held:
    """One unit of work driven step by step: `begin`, then `append`, then `commit`/`rollback`.

    Its event's id joins `committed` once the commit has returned.
    """

    def __init__(self, store: SqlAlchemyEventStore, stream_id: str, committed: set[uuid.UUID]):
        self.stream_id = stream_id
        self._xid: int | None = None
        self.position = 0
        """The event's global position, once appended."""
        self.event_id: uuid.UUID | None = None
        self._store = store
        self._committed = committed
        self._hold = _Hold()
        self._go = anyio.Event()
        self._ended = anyio.Event()
        self._appending = False
        self._rollback = False

    @classmethod
    async def begin(
        cls,
        group: anyio.abc.TaskGroup,
        store: SqlAlchemyEventStore,
        stream_id: str,
        committed: set[uuid.UUID],
        *,
        take_xid: bool = True,
    ) -> Held:
        """Open the unit of work; with `take_xid`, give its transaction an id at once."""
        held = cls(store, stream_id, committed)
        await group.start(held._run, take_xid)
        return held

    async def _run(self, take_xid: bool, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        async with UnitOfWork(self._store, projectors=[self._hold]) as uow:
            if take_xid:
                self._xid = await _xid(uow.connection)
            task_status.started()
            await self._go.wait()
            if self._appending:
                note = Note.write(self.stream_id, self.stream_id)
                self.event_id = note.pending_events[0].event_id
                await uow.repository(Note).add(note)
            if self._appending or not self._rollback:
                with suppress(_RolledBack):
                    await uow.commit()
            # else: leave without commit, which rolls back
        if self.event_id is not None and not self._rollback:
            self._committed.add(self.event_id)
        self._ended.set()

    async def append(self) -> None:
        """Append the event (taking a position) and hold the transaction open."""
        self._appending = True
        self._go.set()
        await self._hold.appended.wait()
        self.position = self._hold.position
        if self._xid is None:
            self._xid = self._hold.xid
        assert self._xid == self._hold.xid

    @property
    def xid(self) -> int:
        """The transaction id (taken at `begin`, or else at `append`)."""
        assert self._xid is not None, "the transaction has no id yet"
        return self._xid

    async def commit(self) -> None:
        """Commit (with the event if appended) and wait until it is done."""
        await self._end(rollback=False)

    async def rollback(self) -> None:
        """Roll back (after the append, if there was one) and wait until it is done."""
        await self._end(rollback=True)

    async def _end(self, *, rollback: bool) -> None:
        self._rollback = self._hold.roll_back = rollback
        self._go.set()
        self._hold.release.set()
        await self._ended.wait()


class CheckpointingReader:
    """Reads the log one event at a time, saving its checkpoint in the store after each.

    It starts every read from the checkpoint it loads back, like a restarted
    subscriber, and checks that it is only ever given committed events.
    """

    def __init__(self, store: SqlAlchemyEventStore, committed: set[uuid.UUID]) -> None:
        self.seen: list[RecordedEvent] = []
        self._store = store
        self._committed = committed
        self._name = "test_log_ordering.reader"

    @property
    def ids(self) -> list[uuid.UUID]:
        """The ids of the events seen so far, in order."""
        return [r.event_id for r in self.seen]

    async def poll(self) -> list[RecordedEvent]:
        """Read everything readable now; return what is new."""
        new: list[RecordedEvent] = []
        while True:
            found = await self._store.load_checkpoints([self._name])
            after = found.get(self._name, LogPosition())
            assert after == (self.seen[-1].log_position if self.seen else LogPosition())
            batch = await self._store.read_log(after, limit=1)
            if not batch:
                return new
            (recorded,) = batch
            assert recorded.event_id in self._committed, "an uncommitted event was read"
            assert recorded.log_position > after
            async with self._store.session() as session:
                await session.save_checkpoint(self._name, recorded.log_position)
                await session.commit([])
            new.append(recorded)
            self.seen.append(recorded)

    async def until(self, count: int) -> None:
        """Poll until `count` events have been seen (fails after `DEADLINE`)."""
        with anyio.fail_after(DEADLINE):
            while True:
                await self.poll()
                if len(self.seen) >= count:
                    return
                await anyio.sleep(0.01)


async def _append_now(
    store: SqlAlchemyEventStore, stream_id: str, committed: set[uuid.UUID]
) -> uuid.UUID:
    """Append one event in a transaction of its own; return its id."""
    new = NewEvent(Noted(text=stream_id))
    await store.append(stream_id, [new])
    committed.add(new.event_id)
    return new.event_id


async def _naive_read(store: SqlAlchemyEventStore, after: int = 0) -> list[uuid.UUID]:
    """What a reader that only follows global positions sees after `after`."""
    return [r.event_id async for r in store.read_all(after=after)]


@pytest.mark.parametrize("slow_appends_first", [True, False], ids=["slow-first", "fast-first"])
async def test_a_slow_transaction_that_began_first_is_not_skipped(
    postgres_event_store: SqlAlchemyEventStore, slow_appends_first: bool
) -> None:
    store, committed = postgres_event_store, set[uuid.UUID]()
    reader = CheckpointingReader(store, committed)
    async with anyio.create_task_group() as group:
        slow = await Held.begin(group, store, "slow", committed)
        fast = await Held.begin(group, store, "fast", committed)
        assert slow.xid < fast.xid
        for held in (slow, fast) if slow_appends_first else (fast, slow):
            await held.append()
        await fast.commit()
        assert await reader.poll() == []  # the fast event waits for the slow transaction
        assert await _naive_read(store) == [fast.event_id]  # a position reader takes it now
        await slow.commit()
    await reader.until(2)
    assert reader.ids == [slow.event_id, fast.event_id]  # transaction id order
    assert [r.transaction_id for r in reader.seen] == [slow.xid, fast.xid]
    assert [r.global_position for r in reader.seen] == [slow.position, fast.position]
    assert await reader.poll() == []
    if slow_appends_first:
        # The gap this prevents: past the fast event, a position reader never sees the slow one.
        assert slow.position < fast.position
        assert await _naive_read(store, fast.position) == []


async def test_a_transaction_that_takes_its_id_late_comes_after(
    postgres_event_store: SqlAlchemyEventStore,
) -> None:
    store, committed = postgres_event_store, set[uuid.UUID]()
    reader = CheckpointingReader(store, committed)
    async with anyio.create_task_group() as group:
        late = await Held.begin(group, store, "late", committed, take_xid=False)
        fast = await Held.begin(group, store, "fast", committed)
        await fast.append()
        await fast.commit()
        await reader.until(1)  # the open transaction has no id: it holds nobody back
        assert reader.ids == [fast.event_id]
        await late.append()
        assert late.xid > fast.xid
        assert late.position > fast.position
        assert await reader.poll() == []
        await late.commit()
    await reader.until(2)
    assert reader.ids == [fast.event_id, late.event_id]
    assert await reader.poll() == []


@pytest.mark.parametrize("reverse_appends", [False, True], ids=["append-in-order", "reversed"])
@pytest.mark.parametrize(
    "commit_order",
    list(itertools.permutations(range(3))),
    ids=lambda o: "commit-" + "".join(map(str, o)),
)
async def test_every_commit_order_of_three_transactions(
    postgres_event_store: SqlAlchemyEventStore,
    commit_order: Sequence[int],
    reverse_appends: bool,
) -> None:
    store, committed = postgres_event_store, set[uuid.UUID]()
    reader = CheckpointingReader(store, committed)
    async with anyio.create_task_group() as group:
        helds = [await Held.begin(group, store, f"t{n}", committed) for n in range(3)]
        for held in reversed(helds) if reverse_appends else helds:
            await held.append()
        for step, index in enumerate(commit_order, start=1):
            await helds[index].commit()
            # Readable: the committed transactions older than every one still open.
            open_ = [h.xid for h in helds if h.event_id not in committed]
            horizon = min(open_, default=2**63)
            readable = [h.event_id for h in helds if h.xid < horizon]
            await reader.until(len(readable))
            assert await reader.poll() == []
            assert reader.ids == readable, f"after commit {step} ({helds[index].stream_id})"
    assert reader.ids == [h.event_id for h in helds]
    xids = [h.xid for h in helds]
    assert xids == sorted(xids)
    assert [r.log_position for r in reader.seen] == [LogPosition(h.xid, h.position) for h in helds]


async def test_a_rolled_back_transaction_never_shows_and_holds_back_until_it_ends(
    postgres_event_store: SqlAlchemyEventStore,
) -> None:
    store, committed = postgres_event_store, set[uuid.UUID]()
    reader = CheckpointingReader(store, committed)
    first = await _append_now(store, "first", committed)
    await reader.until(1)
    async with anyio.create_task_group() as group:
        doomed = await Held.begin(group, store, "doomed", committed)
        await doomed.append()
        later = await Held.begin(group, store, "later", committed)
        await later.append()
        await later.commit()
        assert await reader.poll() == []  # the doomed transaction might still commit
        await doomed.rollback()
    await reader.until(2)
    assert reader.ids == [first, later.event_id]
    last = await _append_now(store, "last", committed)
    await reader.until(3)
    assert reader.ids == [first, later.event_id, last]
    assert await reader.poll() == []
    # Its position was taken and is a gap now; its event is nowhere.
    assert doomed.position < later.position
    assert doomed.event_id not in await _naive_read(store)
    assert await store.log_position_of(doomed.position) is None
    assert await store.read_stream("doomed") == []


async def test_a_rolled_back_transaction_before_a_committed_one(
    postgres_event_store: SqlAlchemyEventStore,
) -> None:
    store, committed = postgres_event_store, set[uuid.UUID]()
    reader = CheckpointingReader(store, committed)
    async with anyio.create_task_group() as group:
        kept = await Held.begin(group, store, "kept", committed)
        doomed = await Held.begin(group, store, "doomed", committed)
        await doomed.append()
        await kept.append()
        await doomed.rollback()
        assert await reader.poll() == []  # the kept transaction is still open
        await kept.commit()
    await reader.until(1)
    assert reader.ids == [kept.event_id]
    assert await reader.poll() == []


@pytest.mark.parametrize("ending", ["commit-with-event", "commit-nothing", "rollback"])
async def test_a_transaction_left_open_holds_the_reader_back_until_it_ends(
    postgres_event_store: SqlAlchemyEventStore, ending: str
) -> None:
    store, committed = postgres_event_store, set[uuid.UUID]()
    reader = CheckpointingReader(store, committed)
    before = await _append_now(store, "before", committed)
    await reader.until(1)
    async with anyio.create_task_group() as group:
        idle = await Held.begin(group, store, "idle", committed)
        if ending == "commit-with-event":
            await idle.append()
        after = [await _append_now(store, f"after-{n}", committed) for n in range(3)]
        for _ in range(5):  # it stays held back for as long as the transaction is open
            assert await reader.poll() == []
            await anyio.sleep(0.02)
        async with Subscription(store, after=reader.seen[-1].log_position) as subscription:
            assert await subscription.read() == []
        # The lag shows: the log's head is past what the reader has seen.
        assert await store.log_head() > reader.seen[-1].global_position
        assert set(await _naive_read(store)) >= {before, *after}
        await (idle.rollback() if ending == "rollback" else idle.commit())
    expected = [before, *([idle.event_id] if ending == "commit-with-event" else []), *after]
    await reader.until(len(expected))
    assert reader.ids == expected
    assert await reader.poll() == []


async def test_any_open_transaction_on_the_server_holds_the_reader_back(
    postgres_event_store: SqlAlchemyEventStore,
) -> None:
    store, committed = postgres_event_store, set[uuid.UUID]()
    reader = CheckpointingReader(store, committed)
    async with store.engine.connect() as other:  # not eventcore's: any writer counts
        await other.begin()
        await _xid(other)
        written = await _append_now(store, "written", committed)
        assert await reader.poll() == []
        await other.rollback()
    await reader.until(1)
    assert reader.ids == [written]
