"""`Subscription`: follow the global log from a checkpoint, catching up and then live."""

from __future__ import annotations

from collections.abc import Collection
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Self

from eventcore._domain._metadata import LogPosition, RecordedEvent
from eventcore._persistence._signal import AppendSignal
from eventcore._persistence._store import EventStore

__all__ = ["Subscription"]


class Subscription:
    """Batches of the global log after a position, in commit order, for as long as you read.

    It catches up with whatever is stored, then waits for new events: woken by the
    store's append signal (on PostgreSQL also by `NOTIFY` from other processes), and
    polling as a fallback, first often (`min_wait`) and then less (up to `max_wait`)
    while nothing happens. It reads the next batch only when you ask for it, so a slow
    consumer is never flooded (back-pressure), and stops cleanly when cancelled.

    It keeps no checkpoint: store each batch's last `log_position` where your results
    are (see [`ProjectionWorker`][eventcore.ProjectionWorker]) and start from it.

    ```python
    async with Subscription(store, after=checkpoint) as batches:
        async for batch in batches:
            ...
    ```
    """

    def __init__(
        self,
        store: EventStore,
        *,
        after: LogPosition = LogPosition(),
        batch_size: int = 200,
        event_types: Collection[str] | None = None,
        stream_types: Collection[str] | None = None,
        min_wait: float = 0.01,
        max_wait: float = 1.0,
    ) -> None:
        self._store = store
        self.position = after
        """The log position of the last event handed out."""
        self._batch_size = batch_size
        self._event_types = event_types
        self._stream_types = stream_types
        self._min_wait = min_wait
        self._max_wait = max_wait
        self._wait = min_wait
        self._stack = AsyncExitStack()
        self._signal: AppendSignal | None = None
        self._notified = 0  # the signal's count when the last read began

    async def __aenter__(self) -> Self:
        self._signal = await self._stack.enter_async_context(self._store.watch())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.__aexit__(exc_type, exc, tb)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> list[RecordedEvent]:
        """The next non-empty batch; waits as long as it takes."""
        while True:
            batch = await self.read()
            if batch:
                return batch
            await self.idle()

    async def read(self) -> list[RecordedEvent]:
        """Read the next batch now (empty when there is nothing new yet)."""
        if self._signal is not None:
            self._notified = self._signal.notified
        batch = await self._store.read_log(
            self.position,
            limit=self._batch_size,
            event_types=self._event_types,
            stream_types=self._stream_types,
        )
        if batch:
            self.position = batch[-1].log_position
            self._wait = self._min_wait
        return batch

    async def idle(self) -> None:
        """Wait for a wake-up, or for the current polling interval to pass."""
        if self._signal is None:
            raise RuntimeError("use the Subscription inside `async with`")
        # A wake-up that came during the last read (which may have missed its events)
        # ends the wait at once.
        if await self._signal.wait(self._wait, since=self._notified):
            self._wait = self._min_wait
        else:
            self._wait = min(self._wait * 2, self._max_wait)
        self._notified = self._signal.notified
