"""`ProjectionWorker`: runs projectors asynchronously, each from its own checkpoint."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio

from eventcore._application._dead_letters import (
    Parking,
    describe,
    discard_dead_letters,
    replay_dead_letters,
)
from eventcore._application._following import follow_under_lease, single_failure
from eventcore._application._horizon import (
    CatchUpResult,
    holdup,
    is_readable,
    log_end,
    wait_until_readable,
)
from eventcore._application._projection_status import (
    ProjectionStatus,
    checkpoint_status,
    has_processed,
    readable,
    wait_for_projection,
)
from eventcore._application._projector import PendingRows, ProjectionContext, Projector
from eventcore._application._rebuild import Progress, RebuildProgress, check_rebuildable
from eventcore._application._subscription import Subscription
from eventcore._domain._metadata import LogPosition, RecordedEvent
from eventcore._exceptions import ProjectionError
from eventcore._persistence._leases import ProjectionLease, ProjectionLeases, leases_for
from eventcore._persistence._store import EventStore, EventStoreSession

__all__ = ["ProjectionWorker"]

_log = logging.getLogger("eventcore.projections")


class ProjectionWorker:
    """Keeps projectors up to date, each with its own checkpoint, in one process.

    Each batch is applied in one transaction together with the projector's checkpoint,
    so a crash or restart never applies an event twice or skips one. A batch that
    fails is retried `retries` times with exponential backoff; then the projector stops
    with a [`ProjectionError`][eventcore.ProjectionError] naming the event (and `run`
    raises it), unless it parks such events (`on_failure="park"`, see
    [Dead letters](../concepts/dead-letters.md)).

    Several workers (in several processes) may run the same projectors: each projector
    runs in one of them at a time, the one holding its lease (`leases`, by default
    the store's: PostgreSQL advisory locks, or in-process leases elsewhere). The others
    try again every `lease_retry` seconds, and take over when the holder stops or dies
    (see [Running projections](../how-to/running-projections.md)).

    ```python
    worker = ProjectionWorker(store, [RosterProjector()])
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)  # catch up, then follow the log live
    ```
    """

    def __init__(
        self,
        store: EventStore,
        projectors: Sequence[Projector],
        *,
        batch_size: int = 200,
        retries: int = 3,
        retry_delay: float = 0.05,
        max_wait: float = 1.0,
        leases: ProjectionLeases | None = None,
        lease_retry: float = 1.0,
    ) -> None:
        keys = [p.key for p in projectors]
        if len(set(keys)) != len(keys):
            raise ProjectionError(f"projector names (and versions) must be unique, got {keys}")
        self._store = store
        self.projectors = list(projectors)
        self._batch_size = batch_size
        self._retries = retries
        self._retry_delay = retry_delay
        self._max_wait = max_wait
        self._leases = leases if leases is not None else leases_for(store)
        self._lease_retry = lease_retry
        self._held: dict[str, _Held] = {}  # the lease and checkpoint of running projectors

    async def run(self) -> None:
        """Follow the log with every projector until cancelled (or one gives up)."""
        with single_failure():
            async with anyio.create_task_group() as group:
                for projector in self.projectors:
                    group.start_soon(self._follow, projector)

    async def catch_up(self) -> CatchUpResult:
        """Process everything readable now; return how many events were applied.

        Each projector runs under its lease. A projector whose lease another worker
        holds is left to that worker, and waited for until it reaches the current head
        (at most 10 s, then [`CatchUpTimeoutError`][eventcore.CatchUpTimeoutError]).

        On PostgreSQL *readable now* stops short of the newest events while an older
        transaction is open on the server: the [`CatchUpResult`][eventcore.CatchUpResult]
        (an `int`) then has `complete` false and `held_back_by` naming it. To wait for
        them, use [`catch_up_to_head`][eventcore.ProjectionWorker.catch_up_to_head].
        """
        end = await log_end(self._store)
        applied = await self._apply_readable()
        if await is_readable(self._store, end):
            return CatchUpResult(applied)
        held_back_by = await holdup(self._store)
        _log.info("catch-up stopped before the log's end (%s): %s", end, held_back_by)
        return CatchUpResult(applied, complete=False, held_back_by=held_back_by)

    async def catch_up_to_head(self, *, timeout: float = 10.0) -> CatchUpResult:
        """Process every event committed before the call (and what is readable after).

        Waits until the log is readable up to its end as of the call (see
        [`wait_until_readable`][eventcore.wait_until_readable]), then catches up. Raises
        [`CatchUpTimeoutError`][eventcore.CatchUpTimeoutError], naming the transaction
        that holds the log back, if it is not readable within `timeout` seconds.
        """
        await wait_until_readable(self._store, timeout=timeout)
        return CatchUpResult(await self._apply_readable())

    async def _apply_readable(self) -> int:
        applied = 0
        for projector in self.projectors:
            async with self._leases.hold(projector.key) as lease:
                if lease is None:
                    await self._wait_for_holder(projector)
                    continue
                async with self._holding(projector, lease) as sub:
                    while batch := await sub.read():
                        await self._apply_with_retries(projector, batch)
                        applied += len(batch)
        return applied

    async def wait_for(self, position: LogPosition | int, *, timeout: float = 10.0) -> None:
        """Wait until every projector has processed the log up to `position`.

        Raises [`CatchUpTimeoutError`][eventcore.CatchUpTimeoutError], naming a projector
        still behind, when they are not all there within `timeout` seconds.
        """
        deadline = anyio.current_time() + timeout
        for projector in self.projectors:
            left = max(deadline - anyio.current_time(), 0.0)
            await wait_for_projection(self._store, projector, position, timeout=left)

    async def status(self) -> list[ProjectionStatus]:
        """The checkpoint and lag of each projector."""
        head = await self._store.log_head()
        return [
            await checkpoint_status(self._store, p.key, p.event_types(), head)
            for p in self.projectors
        ]

    async def rebuild(
        self,
        projector: Projector,
        *,
        progress: RebuildProgress | None = None,
        activate: bool = True,
    ) -> int:
        """Build a new version of a read model from the log, then switch readers to it.

        `projector` is the new version (say `version=2`, writing tables of its own). It
        runs from its own checkpoint (the start of the log, the first time) until it has
        caught up with the log (at least up to the head as of the call), while the
        version that serves keeps being updated by the workers. Then, if `activate`,
        the new version becomes the active one
        ([`activate_projection`][eventcore.EventStore.activate_projection]), in one
        atomic switch. Returns how many events were applied here.

        Resumable: batches commit with the checkpoint, so after a crash or a
        cancellation calling it again goes on where it stopped. When another worker
        holds the new version's lease (it runs it), the rebuild waits for that worker
        to catch up instead (taking over if it stops). `progress(done, total)`, plain
        or async, is called as it goes: log positions, up to the head.

        Keep the new version in your workers' projectors, so that it stays up to date
        once it serves. Raises [`ProjectionError`][eventcore.ProjectionError] if
        `projector`'s version is the active one already.
        """
        await check_rebuildable(self._store, projector)
        head = await self._store.log_head()
        target = await readable(self._store, head) if head else LogPosition()
        report = Progress(progress, head)
        while True:
            async with self._leases.hold(projector.key) as lease:
                if lease is not None:
                    applied = await self._rebuild_here(projector, lease, report)
                    break
            checkpoint = await self._checkpoint(projector)
            await report.at(checkpoint)
            if await has_processed(self._store, projector, checkpoint, target):
                applied = 0  # the worker that runs it has caught up
                break
            await anyio.sleep(self._lease_retry)
        await report.finish()
        if activate:
            await self._store.activate_projection(projector.name, projector.version)
        return applied

    async def replay_dead_letters(self, projector: str, *, stream_id: str | None = None) -> int:
        """Run projector `projector` again on its parked events; return how many succeeded.

        Each stream's events go in version order, one transaction each, which also
        deletes the event's dead letter. Events that fail again stay parked, with their
        `attempts` counted; for an ordered projector, so do the later ones of the stream.
        `projector` is the projector's [`key`][eventcore.Projector.key] (its name, for
        version 1).
        """
        return await replay_dead_letters(self._store, self._named(projector), stream_id=stream_id)

    async def discard_dead_letters(
        self,
        projector: str,
        *,
        stream_id: str | None = None,
        event_ids: Collection[uuid.UUID] | None = None,
    ) -> int:
        """Delete projector `projector`'s dead letters unreplayed; return how many.

        All of them, or those of one stream, or of the given events. Later events of
        their streams are handled normally again. `projector` is the projector's `key`.
        """
        name = self._named(projector).key
        return await discard_dead_letters(
            self._store, name, stream_id=stream_id, event_ids=event_ids
        )

    async def _rebuild_here(
        self, projector: Projector, lease: ProjectionLease, report: Progress
    ) -> int:
        """Apply events to `projector` until a batch is not full: it has caught up.

        (Not until a read finds nothing: under a steady stream of appends, that may never
        happen.) Progress is reported after each batch.
        """
        applied = 0
        async with self._holding(projector, lease) as sub:
            await report.at(self._held[projector.key].checkpoint)
            while True:
                batch = await sub.read()
                if batch:
                    await self._apply_with_retries(projector, batch)
                    applied += len(batch)
                    await report.at(batch[-1].log_position)
                if len(batch) < self._batch_size:
                    return applied

    def _named(self, name: str) -> Projector:
        for projector in self.projectors:
            if projector.key == name:
                return projector
        raise ProjectionError(f"this worker has no projector named {name!r}")

    async def _follow(self, projector: Projector) -> None:
        """Run `projector` while this process holds its lease; else (or once lost) retry."""

        async def follow(lease: ProjectionLease) -> None:
            async with self._holding(projector, lease) as batches:
                async for batch in batches:
                    await self._apply_with_retries(projector, batch)

        await follow_under_lease(self._leases, projector.key, follow, retry=self._lease_retry)

    @asynccontextmanager
    async def _holding(
        self, projector: Projector, lease: ProjectionLease
    ) -> AsyncIterator[Subscription]:
        """Subscribe from the checkpoint; batches are guarded by `lease` meanwhile."""
        checkpoint = await self._checkpoint(projector)
        self._held[projector.key] = _Held(lease, checkpoint)
        try:
            async with self._subscription(projector, checkpoint) as batches:
                yield batches
        finally:
            del self._held[projector.key]

    async def _guard(
        self, projector: Projector, session: EventStoreSession, end: LogPosition
    ) -> bool:
        """Fence the batch ending at `end`; say whether the lease moved the checkpoint."""
        held = self._held.get(projector.key)
        return held is not None and await held.lease.guard(session, held.checkpoint, end)

    async def _wait_for_holder(self, projector: Projector) -> None:
        head = await self._store.log_head()
        if head:
            await wait_for_projection(self._store, projector, head)

    def _subscription(self, projector: Projector, after: LogPosition) -> Subscription:
        return Subscription(
            self._store,
            after=after,
            batch_size=self._batch_size,
            event_types=projector.event_types(),
            max_wait=self._max_wait,
        )

    async def _checkpoint(self, projector: Projector) -> LogPosition:
        found = await self._store.load_checkpoints([projector.key])
        return found.get(projector.key, LogPosition())

    async def _apply_with_retries(self, projector: Projector, batch: list[RecordedEvent]) -> None:
        poisoned: dict[uuid.UUID, str] = {}  # events to park, when the projector parks
        attempt = 0
        while True:
            try:
                # The first try collects inserted rows per table; retries write each
                # at once, so that a failure is pinned on its event.
                collect = attempt == 0 and self._retries > 0
                await self._apply(projector, batch, poisoned, collect=collect)
                return
            except _EventFailed as failure:
                if attempt < self._retries:
                    _log.warning("projector %s failed, retrying: %r", projector.key, failure.cause)
                    await anyio.sleep(self._retry_delay * 2**attempt)
                    attempt += 1
                    continue
                if projector.on_failure != "park":
                    raise _gave_up(projector, failure, attempt + 1) from failure.__cause__
                poisoned[failure.recorded.event_id] = _parking(projector, failure)
                attempt = 0

    async def _apply(
        self,
        projector: Projector,
        batch: list[RecordedEvent],
        poisoned: Mapping[uuid.UUID, str] | None = None,
        *,
        collect: bool = False,
    ) -> None:
        rows = PendingRows() if collect else None
        end = batch[-1].log_position
        async with self._store.session() as session:
            # Before any write: fails if superseded (on PostgreSQL, moves the checkpoint).
            saved = await self._guard(projector, session, end)
            attempts = self._retries + 1
            parking = await Parking.start(projector, session, batch, poisoned or {}, attempts)
            for recorded in batch:
                if await parking.parked(recorded):
                    continue
                try:
                    context = ProjectionContext(recorded, session, rows)
                    await projector.project(recorded, context)
                except Exception as error:
                    raise _EventFailed(recorded, error) from error
            if rows:
                try:
                    await rows.flush(ProjectionContext(batch[-1], session).connection)
                except Exception as error:  # which event's row failed is found on retry
                    raise _EventFailed(batch[-1], error) from error
            if not saved:
                await session.save_checkpoint(projector.key, end)
            await session.commit([])
        if (held := self._held.get(projector.key)) is not None:
            held.checkpoint = end


@dataclass(slots=True)
class _Held:
    lease: ProjectionLease
    checkpoint: LogPosition


class _EventFailed(Exception):
    def __init__(self, recorded: RecordedEvent, cause: Exception) -> None:
        super().__init__(repr(cause))
        self.recorded = recorded
        self.cause = cause


def _gave_up(projector: Projector, failure: _EventFailed, attempts: int) -> ProjectionError:
    r = failure.recorded
    return ProjectionError(
        f"projector {projector.key!r} stopped: {r.event_type} at stream {r.stream_id!r} "
        f"version {r.version} (log position {tuple(r.log_position)}) failed {attempts} "
        f"times: {failure.cause!r}"
    )


def _parking(projector: Projector, failure: _EventFailed) -> str:
    """Log that the failed event gets parked; return the error text to park it with."""
    r = failure.recorded
    _log.error("projector %s parks %s of stream %r version %d: %r", projector.key,
               r.event_type, r.stream_id, r.version, failure.cause)  # fmt: skip
    return describe(failure.cause)
