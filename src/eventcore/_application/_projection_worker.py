"""`ProjectionWorker`: runs projectors asynchronously, each from its own checkpoint."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio

from eventcore._application._projector import ProjectionContext, Projector
from eventcore._application._subscription import Subscription
from eventcore._domain._metadata import LogPosition, RecordedEvent
from eventcore._exceptions import CatchUpTimeoutError, ProjectionError
from eventcore._persistence._store import EventStore

__all__ = ["ProjectionStatus", "ProjectionWorker", "wait_for_projection"]

_log = logging.getLogger("eventcore.projections")


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    """Where a projection stands: its checkpoint, and how far behind the log it is."""

    name: str
    checkpoint: LogPosition
    head: int
    """The highest global position committed in the store."""
    pending: bool
    """Whether events the projection handles are readable but not processed yet."""
    lag_seconds: float
    """Age of the oldest readable event not yet processed (0 when caught up)."""


class ProjectionWorker:
    """Keeps projectors up to date, each with its own checkpoint, in one process.

    Each batch is applied in one transaction together with the projector's checkpoint,
    so a crash or restart never applies an event twice or skips one. A batch that
    fails is retried `retries` times with exponential backoff; then the projector stops
    with a [`ProjectionError`][eventcore.ProjectionError] naming the event (and `run`
    raises it).

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
    ) -> None:
        names = [p.name for p in projectors]
        if len(set(names)) != len(names):
            raise ProjectionError(f"projector names must be unique, got {names}")
        self._store = store
        self.projectors = list(projectors)
        self._batch_size = batch_size
        self._retries = retries
        self._retry_delay = retry_delay
        self._max_wait = max_wait

    async def run(self) -> None:
        """Follow the log with every projector until cancelled (or one gives up)."""
        async with anyio.create_task_group() as group:
            for projector in self.projectors:
                group.start_soon(self._follow, projector)

    async def catch_up(self) -> int:
        """Process everything readable now, then return how many events were applied."""
        applied = 0
        for projector in self.projectors:
            async with self._subscription(projector, await self._checkpoint(projector)) as sub:
                while batch := await sub.read():
                    await self._apply_with_retries(projector, batch)
                    applied += len(batch)
        return applied

    async def wait_for(self, position: LogPosition | int, *, timeout: float = 10.0) -> None:
        """Wait until every projector has processed the log up to `position`."""
        with anyio.fail_after(timeout):
            for projector in self.projectors:
                await wait_for_projection(self._store, projector, position, timeout=timeout)

    async def status(self) -> list[ProjectionStatus]:
        """The checkpoint and lag of each projector."""
        head = await self._store.log_head()
        return [await _status(self._store, p, head) for p in self.projectors]

    async def _follow(self, projector: Projector) -> None:
        async with self._subscription(projector, await self._checkpoint(projector)) as batches:
            async for batch in batches:
                await self._apply_with_retries(projector, batch)

    def _subscription(self, projector: Projector, after: LogPosition) -> Subscription:
        return Subscription(
            self._store,
            after=after,
            batch_size=self._batch_size,
            event_types=projector.event_types(),
            max_wait=self._max_wait,
        )

    async def _checkpoint(self, projector: Projector) -> LogPosition:
        found = await self._store.load_checkpoints([projector.name])
        return found.get(projector.name, LogPosition())

    async def _apply_with_retries(self, projector: Projector, batch: list[RecordedEvent]) -> None:
        for attempt in range(self._retries + 1):
            try:
                await self._apply(projector, batch)
                return
            except _EventFailed as failure:
                if attempt == self._retries:
                    raise _gave_up(projector, failure, attempt + 1) from failure.__cause__
                _log.warning("projector %s failed, retrying: %r", projector.name, failure.cause)
                await anyio.sleep(self._retry_delay * 2**attempt)

    async def _apply(self, projector: Projector, batch: list[RecordedEvent]) -> None:
        async with self._store.session() as session:
            for recorded in batch:
                try:
                    await projector.project(recorded, ProjectionContext(recorded, session))
                except Exception as error:
                    raise _EventFailed(recorded, error) from error
            await session.save_checkpoint(projector.name, batch[-1].log_position)
            await session.commit([])


class _EventFailed(Exception):
    def __init__(self, recorded: RecordedEvent, cause: Exception) -> None:
        super().__init__(repr(cause))
        self.recorded = recorded
        self.cause = cause


def _gave_up(projector: Projector, failure: _EventFailed, attempts: int) -> ProjectionError:
    r = failure.recorded
    return ProjectionError(
        f"projector {projector.name!r} stopped: {r.event_type} at stream {r.stream_id!r} "
        f"version {r.version} (log position {tuple(r.log_position)}) failed {attempts} "
        f"times: {failure.cause!r}"
    )


async def wait_for_projection(
    store: EventStore,
    projector: Projector | type[Projector],
    position: LogPosition | int,
    *,
    timeout: float = 10.0,
) -> None:
    """Wait until `projector` has processed every event it handles up to `position`.

    `position` is a [`LogPosition`][eventcore.LogPosition] or a global position (as in
    an `AppendResult`): read-your-writes for an API that just appended. Raises
    [`CatchUpTimeoutError`][eventcore.CatchUpTimeoutError] after `timeout` seconds.
    """
    types = projector.event_types()
    delay = 0.005
    try:
        with anyio.fail_after(timeout):
            target = await _readable(store, position)
            while True:
                done = (await store.load_checkpoints([projector.name])).get(projector.name)
                after = done or LogPosition()
                if after >= target:
                    return
                waiting = await store.read_log(after, limit=1, event_types=types)
                if not waiting or waiting[0].log_position > target:
                    return  # nothing it handles is left at or before the target
                await anyio.sleep(delay)
                delay = min(delay * 2, 0.1)
    except TimeoutError:
        raise CatchUpTimeoutError(
            f"projection {projector.name!r} did not reach {position} within {timeout} s"
        ) from None


async def _readable(store: EventStore, position: LogPosition | int) -> LogPosition:
    """Wait until the log is readable up to `position` (no older transaction still open)."""
    if isinstance(position, int):
        found = await store.log_position_of(position)
        if found is None:
            raise ProjectionError(f"no event at global position {position}")
        position = found
    before = LogPosition(position.transaction_id, position.global_position - 1)
    delay = 0.005
    while not await store.read_log(before, limit=1):
        await anyio.sleep(delay)
        delay = min(delay * 2, 0.1)
    return position


async def _status(store: EventStore, projector: Projector, head: int) -> ProjectionStatus:
    checkpoint = (await store.load_checkpoints([projector.name])).get(projector.name, LogPosition())
    waiting = await store.read_log(checkpoint, limit=1, event_types=projector.event_types())
    lag = (datetime.now(UTC) - waiting[0].recorded_at).total_seconds() if waiting else 0.0
    return ProjectionStatus(projector.name, checkpoint, head, bool(waiting), max(lag, 0.0))
