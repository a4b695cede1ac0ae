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

    def notify(self) -> None:
        """Wake every task waiting right now."""
        self._event.set()
        self._event = anyio.Event()

    async def wait(self, seconds: float) -> bool:
        """Wait for the next `notify`, at most `seconds`; tell whether it came."""
        with anyio.move_on_after(seconds):
            await self._event.wait()
            return True
        return False
