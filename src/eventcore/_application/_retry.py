"""Retrying an operation that lost an optimistic-concurrency race."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from eventcore._exceptions import ConcurrencyError

__all__ = ["retry_on_conflict"]

T = TypeVar("T")


async def retry_on_conflict(
    operation: Callable[[], Awaitable[T]],
    *,
    attempts: int = 5,
    base_delay: float = 0.002,
    max_delay: float = 0.1,
) -> T:
    """Run `operation`; if it raises a `ConcurrencyError`, run it again.

    `operation` must start from fresh state each time (load the aggregate inside it, or
    open the unit of work inside it). Between attempts it sleeps with exponential
    backoff and full jitter, so contending writers spread out. After `attempts` tries
    the last `ConcurrencyError` is raised.

    ```python
    async def register() -> None:
        async with UnitOfWork(store) as uow:
            section = await uow.repository(Section).get("cs101")
            section.register("s-1")
            await uow.commit()

    await retry_on_conflict(register)
    ```
    """
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, not {attempts}")
    for attempt in range(attempts):
        try:
            return await operation()
        except ConcurrencyError:
            if attempt == attempts - 1:
                raise
            await anyio.sleep(random.uniform(0, min(max_delay, base_delay * 2**attempt)))
    raise AssertionError("unreachable")  # pragma: no cover
