"""Where projections stand: `ProjectionStatus`, and waiting for one to catch up."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio

from eventcore._application._horizon import holdup, wait_until_readable
from eventcore._application._projector import Projector
from eventcore._domain._metadata import LogPosition
from eventcore._exceptions import CatchUpTimeoutError
from eventcore._persistence._store import EventStore

__all__ = [
    "ProjectionStatus",
    "checkpoint_status",
    "has_processed",
    "readable",
    "wait_for_projection",
]


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    """Where a projection stands: its checkpoint, and how far behind the log it is."""

    name: str
    """The projector's [`key`][eventcore.Projector.key]: its name (`name@vN` after version 1)."""
    checkpoint: LogPosition
    head: int
    """The highest global position committed in the store."""
    pending: bool
    """Whether events the projection handles are readable but not processed yet."""
    lag_seconds: float
    """Age of the oldest readable event not yet processed (0 when caught up)."""


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
    target: LogPosition | None = None
    delay = 0.005
    try:
        with anyio.fail_after(timeout):
            target = await readable(store, position)
            while True:
                done = (await store.load_checkpoints([projector.key])).get(projector.key)
                if await has_processed(store, projector, done or LogPosition(), target):
                    return
                await anyio.sleep(delay)
                delay = min(delay * 2, 0.1)
    except TimeoutError:
        why = (
            ""
            if target is not None
            else f" (the log is not readable that far: {await holdup(store)})"
        )
        raise CatchUpTimeoutError(
            f"projection {projector.key!r} did not reach {position} within {timeout} s{why}"
        ) from None


async def has_processed(
    store: EventStore,
    projector: Projector | type[Projector],
    checkpoint: LogPosition,
    target: LogPosition,
) -> bool:
    """Whether a projector at `checkpoint` has processed every event it handles up to
    `target` (the log being readable that far)."""
    if checkpoint >= target:
        return True
    waiting = await store.read_log(checkpoint, limit=1, event_types=projector.event_types())
    return not waiting or waiting[0].log_position > target  # nothing it handles is left


async def readable(store: EventStore, position: LogPosition | int) -> LogPosition:
    """Wait until the log is readable up to `position` (no older transaction still open),
    as long as it takes."""
    return await wait_until_readable(store, position, timeout=math.inf)


async def checkpoint_status(
    store: EventStore, key: str, event_types: list[str], head: int
) -> ProjectionStatus:
    """Where the follower of the log with checkpoint `key`, reading `event_types`, stands."""
    checkpoint = (await store.load_checkpoints([key])).get(key, LogPosition())
    waiting = await store.read_log(checkpoint, limit=1, event_types=event_types)
    lag = (datetime.now(UTC) - waiting[0].recorded_at).total_seconds() if waiting else 0.0
    return ProjectionStatus(key, checkpoint, head, bool(waiting), max(lag, 0.0))
