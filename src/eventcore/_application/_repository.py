"""`Repository[A]`: load aggregates from their events (and snapshots), save new events."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from eventcore._application._retry import retry_on_conflict
from eventcore._domain._aggregate import Aggregate
from eventcore._domain._metadata import RecordedEvent
from eventcore._exceptions import (
    AggregateError,
    AggregateExistsError,
    AggregateNotFoundError,
    WrongExpectedVersionError,
)
from eventcore._persistence._codec import validate_stream_id
from eventcore._persistence._snapshots import Snapshot, SnapshotStore
from eventcore._persistence._store import AppendResult, EventStore

if TYPE_CHECKING:
    from eventcore._application._unit_of_work import UnitOfWork

__all__ = ["Repository"]

A = TypeVar("A", bound=Aggregate)
_log = logging.getLogger("eventcore.repository")


class _StreamReader(Protocol):
    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        as_of: datetime | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]: ...


class Repository(Generic[A]):
    """Loads and saves aggregates of one type.

    Standalone (`Repository(Section, store)`), `add` and `save` append at once. Taken
    from a unit of work (`uow.repository(Section)`), they only mark the aggregate, and
    the unit of work's `commit` appends every marked aggregate's events in one transaction.

    ```python
    sections = Repository(Section, store)
    section = await sections.get("cs101")
    section.register("s-1")
    await sections.save(section)
    ```
    """

    def __init__(
        self,
        aggregate_type: type[A],
        store: EventStore,
        *,
        snapshots: SnapshotStore | None = None,
        unit_of_work: UnitOfWork | None = None,
    ) -> None:
        if not (isinstance(aggregate_type, type) and issubclass(aggregate_type, Aggregate)):
            raise AggregateError(f"{aggregate_type!r} is not an Aggregate subclass")
        self.aggregate_type = aggregate_type
        self._store = store
        self._snapshots = snapshots if snapshots is not None else store.snapshots
        self._uow = unit_of_work

    async def get(
        self,
        aggregate_id: str,
        *,
        at_version: int | None = None,
        as_of: datetime | None = None,
    ) -> A:
        """Load the aggregate, now or as it was at a version or point in time.

        Raises [`AggregateNotFoundError`][eventcore.AggregateNotFoundError] when it has no
        events (or none at or before `as_of`, or fewer than `at_version`). An aggregate
        loaded at a past version or time is for reading; saving it raises a conflict.
        """
        validate_stream_id(aggregate_id)
        cls = self.aggregate_type
        start = await self._from_snapshot(aggregate_id, at_version, as_of)
        from_version = start.version + 1 if start else 1
        reader: _StreamReader = self._uow.session if self._uow else self._store
        recorded = await reader.read_stream(
            aggregate_id, from_version=from_version, to_version=at_version, as_of=as_of
        )
        if start is None and not recorded:
            raise AggregateNotFoundError(cls.aggregate_type, aggregate_id, _when(at_version, as_of))
        aggregate = cls.rehydrate(aggregate_id, [r.event for r in recorded], start=start)
        if at_version is not None and aggregate.version < at_version:
            raise AggregateNotFoundError(
                cls.aggregate_type,
                aggregate_id,
                f"at version {at_version} (its latest version is {aggregate.version})",
            )
        if self._uow is not None:
            self._uow.track(aggregate)
        return aggregate

    async def _from_snapshot(
        self, aggregate_id: str, at_version: int | None, as_of: datetime | None
    ) -> A | None:
        cls = self.aggregate_type
        if cls.snapshot_every is None or as_of is not None:
            return None
        snapshot = await self._snapshots.get(aggregate_id)
        if (
            snapshot is None
            or snapshot.aggregate_type != cls.aggregate_type
            or snapshot.schema_version != cls.snapshot_version
            or (at_version is not None and snapshot.version > at_version)
        ):
            return None
        aggregate = cls(aggregate_id)
        aggregate.restore_snapshot(snapshot.state)
        aggregate.version = snapshot.version
        return aggregate

    async def add(self, aggregate: A) -> AppendResult | None:
        """Save a new aggregate.

        Raises [`AggregateExistsError`][eventcore.AggregateExistsError] (a
        `WrongExpectedVersionError`) if its id is taken: its stream exists already. In
        a unit of work, its `commit()` raises it.
        """
        self._check_type(aggregate)
        if aggregate.committed_version != 0:
            raise AggregateError(f"{aggregate!r} is not new: use save()")
        try:
            return await self.save(aggregate)
        except WrongExpectedVersionError as conflict:
            raise exists_error(aggregate, conflict) from None

    async def save(self, aggregate: A) -> AppendResult | None:
        """Append the aggregate's pending events, expecting its loaded version.

        In a unit of work this only marks the aggregate and returns `None`: its
        `commit()` does the append. Raises
        [`WrongExpectedVersionError`][eventcore.WrongExpectedVersionError] when someone
        else saved the aggregate since it was loaded.
        """
        self._check_type(aggregate)
        if self._uow is not None:
            self._uow.track(aggregate)
            return None
        if not aggregate.pending_events:
            return None
        result = await self._store.append(
            aggregate.id,
            aggregate.pending_events,
            expected_version=aggregate.committed_version,
            stream_type=type(aggregate).aggregate_type,
        )
        previous = aggregate.committed_version
        aggregate.mark_saved()
        await take_snapshot_if_due(self._snapshots, aggregate, previous)
        return result

    async def update(
        self,
        aggregate_id: str,
        command: Callable[[A], Awaitable[None] | None],
        *,
        attempts: int = 5,
    ) -> A:
        """Load, run `command` on the aggregate, save; on a conflict, reload and retry.

        `command` may be a plain or an async function; it must be safe to run again on
        freshly loaded state. Not available inside a unit of work (retry the whole
        unit of work with [`retry_on_conflict`][eventcore.retry_on_conflict] instead).
        """
        if self._uow is not None:
            raise AggregateError("Repository.update() retries by itself: not in a unit of work")

        async def attempt() -> A:
            aggregate = await self.get(aggregate_id)
            outcome = command(aggregate)
            if outcome is not None:
                await outcome
            await self.save(aggregate)
            return aggregate

        return await retry_on_conflict(attempt, attempts=attempts)

    def _check_type(self, aggregate: Aggregate) -> None:
        if not isinstance(aggregate, self.aggregate_type):
            raise AggregateError(
                f"a Repository[{self.aggregate_type.__name__}] cannot store {aggregate!r}"
            )


async def take_snapshot_if_due(
    snapshots: SnapshotStore, aggregate: Aggregate, previous_version: int
) -> None:
    """Store a snapshot if the aggregate crossed a multiple of its `snapshot_every`.

    Best effort: the events are committed already, so a failed snapshot is logged,
    not raised (the next load replays a few more events).
    """
    every = type(aggregate).snapshot_every
    if every is None or aggregate.version // every == previous_version // every:
        return
    try:
        snapshot = Snapshot(
            aggregate.id,
            type(aggregate).aggregate_type,
            aggregate.version,
            type(aggregate).snapshot_version,
            aggregate.to_snapshot(),
            datetime.now(UTC),
        )
        await snapshots.save(snapshot)
    except Exception:
        _log.warning("could not snapshot %r", aggregate, exc_info=True)


def exists_error(aggregate: Aggregate, conflict: WrongExpectedVersionError) -> Exception:
    """The error for a new aggregate whose append met an existing stream (or `conflict`)."""
    if conflict.actual > 0 and conflict.stream_id == aggregate.id:
        return AggregateExistsError(type(aggregate).aggregate_type, aggregate.id, conflict.actual)
    return conflict


def _when(at_version: int | None, as_of: datetime | None) -> str:
    if as_of is not None:
        return f"as of {as_of.isoformat()}"
    if at_version is not None:
        return f"at version {at_version}"
    return ""
