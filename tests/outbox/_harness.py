"""What every outbox fault test does: produce entries, consume them into the read model,
wait with deadlines, check exactly-once, and report the counts."""

from __future__ import annotations

import inspect
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
from sqlalchemy import Table, select

from eventcore import (
    ConsumerWorker,
    Delivery,
    Message,
    MessageSource,
    OutboxStatus,
    SqlAlchemyEventStore,
)
from tests.outbox._model import EffectsConsumer, Entry, LedgerContract, entry_of, record_entries

Row = tuple[uuid.UUID, str, int]
"""A read-model row: `(message_id, key, n)`, in handling order."""


async def until(condition: Callable[[], object], seconds: float, what: Callable[[], str]) -> None:
    """Wait until `condition()` (sync or async) holds; fail after `seconds`, saying `what()`."""
    with anyio.move_on_after(seconds):
        while True:
            result = condition()
            if await result if inspect.isawaitable(result) else result:
                return
            await anyio.sleep(0.01)
    raise AssertionError(f"not within {seconds} s: {what()}")


class RecordingSource:
    """A `MessageSource` that remembers every message it delivers, duplicates included."""

    def __init__(self, inner: MessageSource) -> None:
        self._inner = inner
        self.arrivals: list[Message] = []

    @asynccontextmanager
    async def deliveries(self) -> AsyncIterator[AsyncIterator[Delivery]]:
        """The inner source's deliveries, each recorded as it arrives."""
        async with self._inner.deliveries() as inner:
            yield _Recorder(inner, self.arrivals)

    async def close(self) -> None:
        """Close the inner source."""
        await self._inner.close()

    def entries(self) -> list[Entry]:
        """The `(key, n)` of every delivery, in arrival order."""
        return [entry_of(message.payload) for message in self.arrivals]


class _Recorder:
    def __init__(self, inner: AsyncIterator[Delivery], arrivals: list[Message]) -> None:
        self._inner = inner
        self._arrivals = arrivals

    def __aiter__(self) -> _Recorder:
        return self

    async def __anext__(self) -> Delivery:
        delivery = await self._inner.__anext__()
        self._arrivals.append(delivery.message)
        return delivery


@dataclass
class Consuming:
    """The running consumer: its worker and what its source delivered."""

    worker: ConsumerWorker
    source: RecordingSource


@asynccontextmanager
async def consuming(
    store: SqlAlchemyEventStore, table: Table, source: MessageSource
) -> AsyncIterator[Consuming]:
    """Run a `ConsumerWorker` of `EffectsConsumer` on `source` while the block is open."""
    recording = RecordingSource(source)
    worker = ConsumerWorker(store, EffectsConsumer(table), recording, retry_delay=0.1)
    async with anyio.create_task_group() as group:
        group.start_soon(worker.run)
        try:
            yield Consuming(worker, recording)
        finally:
            group.cancel_scope.cancel()
    await source.close()


@dataclass
class Producer:
    """Runs commands on ledgers `keys`, round after round, and keeps what was committed."""

    store: SqlAlchemyEventStore
    contract: LedgerContract
    keys: Sequence[str]
    pace: float = 0.0
    committed: list[Entry] = field(default_factory=list)
    commands: int = 0

    async def rounds(self, count: int) -> None:
        """`count` rounds: one command per key each (1 to 3 entries per command)."""
        for _ in range(count):
            await self.round()

    async def round(self) -> None:
        """One command per key; every third command records several entries."""
        for key in self.keys:
            self.commands += 1
            entries = 3 if self.commands % 3 == 0 else 1
            self.committed += await record_entries(self.store, self.contract, key, entries)
            await anyio.sleep(self.pace)


async def read_model(store: SqlAlchemyEventStore, table: Table) -> list[Row]:
    """The read model's rows in the order they were written."""
    query = select(table.c.message_id, table.c.key, table.c.n).order_by(table.c.seq)
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [(uuid.UUID(str(m)), k, n) for m, k, n in rows]


async def all_handled(
    store: SqlAlchemyEventStore, table: Table, committed: Sequence[Entry], seconds: float = 20
) -> list[Row]:
    """Wait until the read model holds a row for every committed entry; return its rows."""
    wanted = set(committed)
    rows: list[Row] = []

    async def complete() -> bool:
        nonlocal rows
        rows = await read_model(store, table)
        return wanted <= {(k, n) for _, k, n in rows}

    def missing() -> str:
        have = {(k, n) for _, k, n in rows}
        lost = sorted(wanted - have)
        return f"{len(lost)} of {len(wanted)} committed entries not handled, e.g. {lost[:10]}"

    await until(complete, seconds, missing)
    return rows


async def all_recorded(
    store: SqlAlchemyEventStore, committed: Sequence[Entry], seconds: float = 20
) -> None:
    """Wait until the outbox has recorded every committed message as sent.

    A message can be handled before that: its relay records a batch as sent while it
    publishes the next, and the message of a relay that died or was cancelled
    mid-batch is published again by another one once its claim has run out.
    """
    status: OutboxStatus | None = None

    async def complete() -> bool:
        nonlocal status
        status = await store.outbox.status()
        return (status.sent, status.pending, status.dead) == (len(committed), 0, 0)

    await until(complete, seconds, lambda: f"{len(committed)} committed; outbox: {status}")


async def assert_exactly_once(
    store: SqlAlchemyEventStore, table: Table, committed: Sequence[Entry]
) -> list[Row]:
    """The read model has exactly one row per committed entry, and the outbox sent each
    committed message (none pending, none dead). Returns the rows."""
    rows = await read_model(store, table)
    counts = Counter((k, n) for _, k, n in rows)
    lost = sorted(set(committed) - set(counts))
    twice = sorted(entry for entry, times in counts.items() if times > 1)
    unknown = sorted(set(counts) - set(committed))
    assert not lost, f"LOST {len(lost)} of {len(committed)} committed entries: {lost[:10]}"
    assert not twice, f"{len(twice)} entries applied more than once: {twice[:10]}"
    assert not unknown, f"entries in the read model that were never committed: {unknown[:10]}"
    assert len(committed) == len(set(committed)) == len(rows)
    assert len({m for m, _, _ in rows}) == len(rows)  # one message id per row
    status = await store.outbox.status()
    assert (status.sent, status.pending, status.dead) == (len(committed), 0, 0), status
    return rows


def first_arrivals(entries: Sequence[Entry]) -> dict[str, list[int]]:
    """Each key's numbers in the order they first arrived (repeats ignored)."""
    seen: set[Entry] = set()
    order: dict[str, list[int]] = {}
    for key, n in entries:
        if (key, n) not in seen:
            seen.add((key, n))
            order.setdefault(key, []).append(n)
    return order


def report(test: str, broker: str, **counts: object) -> str:
    """Print the counts of a fault test (shown with `-s`) and return the line."""
    line = f"[{test} / {broker}] " + " ".join(f"{name}={value}" for name, value in counts.items())
    print(line)
    return line
