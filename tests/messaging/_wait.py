"""Polling with a deadline, for conditions that other tasks make true."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import anyio


async def eventually(condition: Callable[[], object], seconds: float = 20) -> None:
    """Wait until `condition()` (sync or async) is true; fail after `seconds`."""
    with anyio.fail_after(seconds):
        while True:
            result = condition()
            if await result if inspect.isawaitable(result) else result:
                return
            await anyio.sleep(0.01)
