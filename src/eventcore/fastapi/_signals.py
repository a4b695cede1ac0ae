"""Drain as soon as the server is told to stop, not once its connections are closed.

An ASGI server runs the lifespan's shutdown only after every open connection has
ended: an endless response (Server-Sent Events) would hold it forever. Servers that
stop on SIGTERM/SIGINT through a Python signal handler (uvicorn does) get that handler
chained here while the app runs: the signal first starts the app's drain (readiness
turns false, event streams end), then goes to the server as before.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["draining_on_signals"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def draining_on_signals(drain: Callable[[], None]) -> Iterator[None]:
    """While open, SIGINT and SIGTERM call `drain` (in the event loop) before the server's
    own handler. Signals nobody handles in Python are left alone (they stop the process)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    chained: dict[signal.Signals, tuple[Any, Any]] = {}
    for sig in _SIGNALS:
        previous = signal.getsignal(sig)
        if not callable(previous) or previous is signal.default_int_handler:
            continue

        def handler(
            signum: int, frame: FrameType | None, _previous: Callable[..., Any] = previous
        ) -> None:
            loop.call_soon_threadsafe(drain)
            _previous(signum, frame)

        signal.signal(sig, handler)
        chained[sig] = (previous, handler)
    try:
        yield
    finally:
        for sig, (previous, handler) in chained.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, previous)
