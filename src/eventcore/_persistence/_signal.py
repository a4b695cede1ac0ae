"""`AppendSignal`: wakes whoever waits for new events, instead of polling blindly."""

from __future__ import annotations

import anyio

__all__ = ["AppendSignal"]


class AppendSignal:
    """An in-process broadcast: "something was appended", to every current waiter.

    A signal is a hint, never the source of truth: readers must still read the log, and
    must not rely on being woken for every append (a wake-up may cover many appends, and
    one from another process may arrive late). Wait with a timeout.
    """

    def __init__(self) -> None:
        self._event = anyio.Event()
        self.notified = 0
        """How many times `notify` was called (pass a reading to `wait(since=...)`)."""

    def notify(self) -> None:
        """Wake every task waiting right now."""
        self.notified += 1
        self._event.set()
        self._event = anyio.Event()

    async def wait(self, seconds: float, *, since: int | None = None) -> bool:
        """Wait for the next `notify`, at most `seconds`; tell whether it came.

        With `since` (a reading of `notified` taken earlier), a `notify` that came after
        that reading counts too, and it returns at once: a wake-up sent while the caller
        was busy (say, reading the log) is not lost.
        """
        if since is not None and since != self.notified:
            return True
        with anyio.move_on_after(seconds):
            await self._event.wait()
            return True
        return False
