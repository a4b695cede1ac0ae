"""Blue/green rebuilds: which version of a read model serves, and a rebuild's progress."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from eventcore._application._projector import Projector
from eventcore._domain._metadata import LogPosition
from eventcore._exceptions import ProjectionError
from eventcore._persistence._store import EventStore

__all__ = ["RebuildProgress", "active_version", "check_rebuildable"]

RebuildProgress = Callable[[int, int], Awaitable[None] | None]
"""A callback `(done, total)`, plain or async, that a rebuild reports its progress to."""


async def active_version(store: EventStore, projection: str | Projector | type[Projector]) -> int:
    """The version of projection `projection` (a name, or a projector) that serves readers.

    1 until a rebuild (or [`activate_projection`][eventcore.EventStore.activate_projection])
    switched it. Read-side code picks the read model's tables with it:

    ```python
    table = ROSTER_TABLES[await active_version(store, "registration.roster")]
    ```
    """
    name = projection if isinstance(projection, str) else projection.name
    return (await store.active_projection_versions()).get(name, 1)


async def check_rebuildable(store: EventStore, projector: Projector) -> None:
    """Refuse to rebuild the version that serves: that is a catch-up, not a rebuild."""
    if await active_version(store, projector) == projector.version:
        raise ProjectionError(
            f"version {projector.version} of {projector.name!r} is the active one: nothing "
            "to rebuild (give the new read model a new version to rebuild it)"
        )


class Progress:
    """Reports how far a rebuild has come, in log positions up to `total` (the head).

    `done` only grows (commit order is not position order on PostgreSQL), and stays
    at most `total`: events appended during the rebuild are applied, but not counted.
    """

    def __init__(self, callback: RebuildProgress | None, total: int) -> None:
        self._callback = callback
        self.total = total
        self.done = -1  # nothing reported yet

    async def at(self, position: LogPosition) -> None:
        """Report that the projection has processed the log up to `position`."""
        done = max(self.done, min(position.global_position, self.total))
        if done != self.done:
            self.done = done
            if self._callback is not None:
                result = self._callback(done, self.total)
                if inspect.isawaitable(result):
                    await result

    async def finish(self) -> None:
        """Report that the rebuild has reached `total`."""
        await self.at(LogPosition(0, self.total))
