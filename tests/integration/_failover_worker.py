"""A projection worker process for `test_projection_failover` (run with `sys.executable`).

It reads its settings from the environment: `FAILOVER_URL` (PostgreSQL), `FAILOVER_SCHEMA`
(the store's schema, which also holds the `ticks` read model), `FAILOVER_LABEL` (written
with every row it projects) and optionally `FAILOVER_STALL_AT` (the `n` of a `Ticked`
event whose handler never returns, so the process stays inside that batch until killed).

It reports on stdout, one line at a time: `lease refused`, `lease taken`, `apply <n>`
for each event it applies, and `stalled` when it reaches the stall.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from sqlalchemy import BigInteger, Column, Identity, MetaData, String, Table, insert

from eventcore import (
    DomainEvent,
    EventStoreTables,
    ProjectionContext,
    ProjectionLease,
    ProjectionLeases,
    ProjectionWorker,
    Projector,
    SqlAlchemyEventStore,
    postgres_engine,
    projects,
)

PER_EVENT_DELAY = 0.002  # seconds: batches take a while, as real ones do
BATCH_SIZE = 10


class Ticked(DomainEvent, type_name="test_projection_failover.Ticked"):
    """One event of the failover tests' log."""

    n: int


def ticks_table(schema: str) -> Table:
    """The read model: one row per applied event, in the order they were applied."""
    return Table(
        "ticks",
        MetaData(),
        Column("seq", BigInteger(), Identity(), primary_key=True),
        Column("stream_id", String(255), nullable=False),
        Column("version", BigInteger(), nullable=False),
        Column("n", BigInteger(), nullable=False),
        Column("worker", String(50), nullable=False),
        schema=schema,
    )


def say(line: str) -> None:
    """Report one line to the test, at once."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class TickProjector(Projector, name="failover_ticks"):
    """Inserts a row per `Ticked` event (no unique key: a double apply would show)."""

    def __init__(
        self, table: Table, worker: str, *, delay: float = 0.0, stall_at: int | None = None
    ) -> None:
        self.table = table
        self.worker = worker
        self.delay = delay
        self.stall_at = stall_at

    @projects
    async def _ticked(self, event: Ticked, context: ProjectionContext) -> None:
        r = context.recorded
        row = {"stream_id": r.stream_id, "version": r.version, "n": event.n, "worker": self.worker}
        await context.connection.execute(insert(self.table).values(row))
        say(f"apply {event.n}")
        if event.n == self.stall_at:
            await self.stall()
        await anyio.sleep(self.delay)

    async def stall(self) -> None:
        """Stop at event `stall_at`, inside its batch, until killed."""
        say("stalled")
        await anyio.sleep_forever()


class AnnouncedLeases:
    """The store's leases, telling stdout whether each attempt got the lease."""

    def __init__(self, inner: ProjectionLeases) -> None:
        self._inner = inner

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[ProjectionLease | None]:
        """Try to take the lease, and say how it went."""
        async with self._inner.hold(name) as lease:
            say("lease refused" if lease is None else "lease taken")
            yield lease


async def main() -> None:
    """Run a worker with the tick projector until killed."""
    schema = os.environ["FAILOVER_SCHEMA"]
    stall = os.environ.get("FAILOVER_STALL_AT")
    engine = postgres_engine(os.environ["FAILOVER_URL"], pool_size=4)
    store = SqlAlchemyEventStore(engine, tables=EventStoreTables(schema=schema))
    projector = TickProjector(
        ticks_table(schema),
        os.environ["FAILOVER_LABEL"],
        delay=PER_EVENT_DELAY,
        stall_at=None if stall is None else int(stall),
    )
    worker = ProjectionWorker(
        store,
        [projector],
        batch_size=BATCH_SIZE,
        leases=AnnouncedLeases(store.projection_leases()),
        lease_retry=0.1,
        max_wait=0.1,
    )
    await worker.run()


if __name__ == "__main__":
    anyio.run(main)
