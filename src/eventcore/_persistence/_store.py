"""The `EventStore` interface: append with optimistic concurrency, read streams and the log."""

from __future__ import annotations

import enum
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from eventcore._domain._metadata import LogPosition, NewEvent, RecordedEvent
from eventcore._persistence._dead_letters import DeadLetter
from eventcore._persistence._signal import AppendSignal
from eventcore._persistence._snapshots import SnapshotStore

if TYPE_CHECKING:
    from eventcore._persistence._deadlines import Deadline

__all__ = [
    "AppendResult",
    "BeforeCommit",
    "EventStore",
    "EventStoreSession",
    "ExpectedVersion",
    "StreamAppend",
]


class ExpectedVersion(enum.Enum):
    """What an append expects of its stream, besides an exact version (an `int`).

    - `ANY`: no check; the events go after whatever is there.
    - `NO_STREAM`: the stream must not exist yet (same as the exact version `0`).
    - `STREAM_EXISTS`: the stream must have at least one event.
    - an `int` *n*: the stream's last event must be version *n*.
    """

    ANY = "any"
    NO_STREAM = "no_stream"
    STREAM_EXISTS = "stream_exists"

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class StreamAppend:
    """Events to append to one stream, as part of an atomic multi-stream append."""

    stream_id: str
    events: Sequence[NewEvent]
    expected_version: int | ExpectedVersion = ExpectedVersion.ANY
    stream_type: str = ""


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append did.

    `next_expected_version` is the stream's version after the append: pass it as the
    expected version of the next one. `already_stored` is true when every event id was
    stored before (an idempotent retry) and nothing was written this time.
    """

    stream_id: str
    next_expected_version: int
    global_positions: tuple[int, ...]
    already_stored: bool = False


BeforeCommit = Callable[[list[AppendResult]], Awaitable[None]]
"""A hook that runs inside a session's transaction, after its append, before its commit."""


@runtime_checkable
class EventStoreSession(Protocol):
    """One transaction against an event store, driven by a unit of work.

    Reads see committed data. A database session also exposes its connection, so other
    writes (read models, the outbox) commit atomically with the events.
    """

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        as_of: datetime | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        """Read a stream, like [`EventStore.read_stream`][eventcore.EventStore.read_stream]."""
        ...

    async def save_checkpoint(self, name: str, position: LogPosition) -> None:
        """Record that subscriber `name` has processed the log up to `position`.

        It commits with the session, so a read model's writes and its checkpoint are
        stored together or not at all (an exactly-once effect).
        """
        ...

    async def park(
        self, projector: str, recorded: RecordedEvent, error: str, *, attempts: int = 1
    ) -> None:
        """Park `recorded` as a dead letter of `projector`, with the error that stopped it.

        It commits with the session (with the rest of the projector's batch and its
        checkpoint). Parking an event that is parked already keeps the first `parked_at`,
        adds `attempts` to its count and records the new `error`.
        """
        ...

    async def release(self, projector: str, event_id: uuid.UUID) -> None:
        """Delete `projector`'s dead letter of event `event_id` (replayed or discarded).

        It commits with the session, so a replay's read-model writes and the deletion of
        the dead letter are stored together or not at all.
        """
        ...

    async def parked_streams(self, projector: str, stream_ids: Collection[str]) -> set[str]:
        """Which of `stream_ids` have events parked for `projector`."""
        ...

    async def schedule_deadline(
        self, stream_id: str, event: NewEvent, due_at: datetime, *, stream_type: str = ""
    ) -> None:
        """Schedule `event` to be appended to `stream_id` at `due_at` (timezone-aware).

        It commits with the session. The deadline's id is `event.event_id`, which the
        event keeps in the log; [`fire_deadlines`][eventcore.EventStore.fire_deadlines]
        appends it once due.
        """
        ...

    async def cancel_deadline(self, deadline_id: uuid.UUID) -> None:
        """Delete a scheduled deadline, with the session (a no-op once it has fired)."""
        ...

    async def commit(
        self, appends: Sequence[StreamAppend], *, before_commit: BeforeCommit | None = None
    ) -> list[AppendResult]:
        """Append to the streams and commit them with the session's other writes, atomically.

        Raises (and commits nothing) if any stream's expected version does not hold.
        `before_commit` runs after the append, inside the transaction, with the append's
        results (inline projections write there); if it raises, nothing is committed.
        """
        ...

    async def rollback(self) -> None:
        """Discard everything done in the session."""
        ...


@runtime_checkable
class EventStore(Protocol):
    """An append-only store of event streams with a global log.

    Every implementation passes the contract suite in
    [`eventcore.testing`](../reference/testing.md).
    """

    @property
    def snapshots(self) -> SnapshotStore:
        """The snapshot store that goes with this event store."""
        ...

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        *,
        expected_version: int | ExpectedVersion = ExpectedVersion.ANY,
        stream_type: str = "",
    ) -> AppendResult:
        """Append `events` to `stream_id` atomically, all or nothing.

        Raises [`WrongExpectedVersionError`][eventcore.WrongExpectedVersionError] when the
        stream is not at `expected_version`. Appending event ids that are all stored
        already, in this stream, is a no-op that returns `already_stored=True`.
        """
        ...

    async def append_streams(self, appends: Sequence[StreamAppend]) -> list[AppendResult]:
        """Append to several streams in one transaction: all streams or none."""
        ...

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        as_of: datetime | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        """Read events of one stream in version order (newest first if `backwards`).

        `from_version`/`to_version` bound the versions (inclusive); `as_of` keeps only
        events recorded at or before that time; `limit` caps how many are returned (with
        `backwards`, the newest ones). An unknown stream reads as an empty list.
        """
        ...

    def read_all(
        self,
        *,
        after: int = 0,
        batch_size: int = 500,
        event_types: Collection[str] | None = None,
        stream_types: Collection[str] | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        """Iterate over the global log in position order, starting after position `after`.

        Fetches `batch_size` events per query. Optional filters keep only the given event
        type names or stream types. This reads what is committed when each batch is
        queried; it is not a subscription.
        """
        ...

    async def read_log(
        self,
        after: LogPosition = LogPosition(),
        *,
        limit: int = 500,
        event_types: Collection[str] | None = None,
        stream_types: Collection[str] | None = None,
    ) -> list[RecordedEvent]:
        """Read the next committed events of the global log after `after`, in commit order.

        Gap-free: it never returns an event while an older transaction that could still
        commit events before it is open, so a reader that checkpoints each returned
        event's `log_position` and passes it back as `after` sees every committed event
        exactly once, in one order, whatever the interleaving of concurrent writers.
        Events of open transactions wait until those commit or roll back.
        """
        ...

    async def stream_version(self, stream_id: str) -> int:
        """Return the stream's current version (0 when it does not exist)."""
        ...

    async def log_head(self) -> int:
        """The highest global position committed so far (0 for an empty log)."""
        ...

    async def log_position_of(self, global_position: int) -> LogPosition | None:
        """The log position of the event at `global_position`, if there is one."""
        ...

    async def load_checkpoints(self, names: list[str] | None = None) -> dict[str, LogPosition]:
        """The checkpoints of the named subscribers (all of them when `None`)."""
        ...

    async def delete_checkpoint(self, name: str) -> None:
        """Forget subscriber `name`'s checkpoint: it starts again from the beginning."""
        ...

    async def active_projection_versions(self) -> dict[str, int]:
        """The active version of each projection whose version was ever switched.

        A projection missing here serves its version 1. Readers pick the read model's
        tables with [`active_version`][eventcore.active_version].
        """
        ...

    async def activate_projection(self, name: str, version: int) -> None:
        """Make `version` of projection `name` the one that serves readers, atomically.

        One row per projection: readers see the old version or the new one, never a mix.
        [`ProjectionWorker.rebuild`][eventcore.ProjectionWorker.rebuild] calls it once
        the new version has caught up; call it yourself to switch back.
        """
        ...

    async def list_dead_letters(self, projector: str | None = None) -> list[DeadLetter]:
        """The events parked for `projector` (for every projector when `None`), in log order.

        Park and release them in a session
        ([`EventStoreSession.park`][eventcore.EventStoreSession.park]); a
        [`ProjectionWorker`][eventcore.ProjectionWorker] replays or discards them.
        """
        ...

    async def fire_deadlines(self, *, now: datetime | None = None, limit: int = 100) -> int:
        """Append the events of deadlines due at `now` (default: now); return how many.

        At most `limit` deadlines, the earliest first; each event goes at the end of its
        stream (no expected version), and its deadline is deleted, in one transaction.
        Concurrent callers (several workers) never fire one deadline twice.
        """
        ...

    async def list_deadlines(self, stream_id: str | None = None) -> list[Deadline]:
        """The scheduled deadlines (of one stream, if given), the earliest first."""
        ...

    def session(self) -> AbstractAsyncContextManager[EventStoreSession]:
        """Open a transaction for a unit of work; it rolls back unless committed."""
        ...

    def watch(self) -> AbstractAsyncContextManager[AppendSignal]:
        """Be woken (a hint, not a delivery) when events are appended, while open."""
        ...
