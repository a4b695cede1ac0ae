"""Hot sections: commands on one stream queue in the process instead of racing.

Correctness never depends on this module: every decision commits with the expected
versions of the streams it read (the section and the schedule), so a seat is never
given twice whatever the interleaving. What it saves is wasted work. A few hundred
students registering for one section at the same second would otherwise all load the
same version, all decide, and all but one lose at commit, reload and try again: a storm
of conflicts. `StreamGate` lets the commands of one section run one at a time in this
process (each waits on an in-process lock, holding no database connection), so they
meet no conflict here; an optional database lock (`database_lock`, PostgreSQL advisory
locks in the infrastructure) does the same across processes. `Retries` retries what
conflicts remain (another process, the waitlist process, the same student elsewhere)
and counts them.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import anyio
from sqlalchemy.ext.asyncio import AsyncConnection

from eventcore import ConcurrencyError

__all__ = ["CommandMetrics", "DatabaseLock", "Retries", "StreamGate"]

T = TypeVar("T")

DatabaseLock = Callable[[AsyncConnection, Sequence[str]], Awaitable[None]]
"""Locks streams (by id, in the order given) until the connection's transaction ends."""


@dataclass
class CommandMetrics:
    """What the student commands cost: how many were decided, and how many conflicts."""

    decided: int = 0
    """Commands that committed a decision (refusals included)."""
    conflicts: int = 0
    """Attempts that lost an optimistic-concurrency race and were tried again."""
    gave_up: int = 0
    """Commands that still conflicted after their last attempt."""

    @property
    def conflicts_per_decision(self) -> float:
        """Conflicts per decided command (0 when nothing was decided)."""
        return self.conflicts / self.decided if self.decided else 0.0


class _Lock:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = anyio.Lock()
        self.users = 0


@dataclass
class StreamGate:
    """Runs the commands on each stream one at a time in this process (if `serialise`).

    Streams are entered in sorted order, so two commands that each need two sections
    (swaps) never wait for each other in a circle.
    """

    serialise: bool = True
    database_lock: DatabaseLock | None = None
    _locks: dict[str, _Lock] = field(default_factory=dict)

    @asynccontextmanager
    async def entered(self, stream_ids: Iterable[str]) -> AsyncIterator[None]:
        """Wait for, then hold, each stream's turn in this process."""
        if not self.serialise:
            yield
            return
        async with AsyncExitStack() as stack:
            for stream_id in sorted(set(stream_ids)):
                await stack.enter_async_context(self._turn(stream_id))
            yield

    async def lock(self, connection: AsyncConnection, stream_ids: Iterable[str]) -> None:
        """Take the database lock of the streams in the transaction (if there is one)."""
        if self.database_lock is not None:
            await self.database_lock(connection, sorted(set(stream_ids)))

    @property
    def waiting(self) -> int:
        """How many commands hold or wait for a stream's turn now."""
        return sum(entry.users for entry in self._locks.values())

    @asynccontextmanager
    async def _turn(self, stream_id: str) -> AsyncIterator[None]:
        entry = self._locks.get(stream_id)
        if entry is None:
            entry = self._locks[stream_id] = _Lock()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[stream_id]


@dataclass
class Retries:
    """Runs an operation again when it conflicts, with jittered backoff, and counts.

    Like `eventcore.retry_on_conflict`, with the counts kept in `metrics`.
    """

    attempts: int = 30
    metrics: CommandMetrics = field(default_factory=CommandMetrics)
    base_delay: float = 0.002
    max_delay: float = 0.1

    async def __call__(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run `operation` until it does not conflict (at most `attempts` times)."""
        for attempt in range(self.attempts):
            try:
                result = await operation()
            except ConcurrencyError:
                self.metrics.conflicts += 1
                if attempt == self.attempts - 1:
                    self.metrics.gave_up += 1
                    raise
                delay = min(self.max_delay, self.base_delay * 2**attempt)
                await anyio.sleep(random.uniform(0, delay))
            else:
                self.metrics.decided += 1
                return result
        raise AssertionError("unreachable")  # pragma: no cover
