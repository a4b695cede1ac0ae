"""How far the log can be read now, and waiting until it can be read up to a position.

A store's log is gap-free: on PostgreSQL it is read only below the oldest transaction
still open on the server (any transaction that wrote, in any database of the server),
since that one could still commit events before those after it. While such a
transaction stays open, the newest events are committed but not readable yet: a
catch-up that reads "everything readable" stops short of them. This module tells
whether that happened, and waits (with a timeout naming what holds the log back)
until the log is readable up to a position.
"""

from __future__ import annotations

from typing import Self

import anyio

from eventcore._domain._metadata import LogPosition
from eventcore._exceptions import CatchUpTimeoutError, ProjectionError
from eventcore._persistence._store import EventStore

__all__ = ["CatchUpResult", "holdup", "is_readable", "log_end", "wait_until_readable"]


class CatchUpResult(int):
    """What a catch-up did: the number of events applied (it *is* that `int`), and
    whether it got to the end of the log as of its call.

    `complete` is false when a transaction open on the server held the log back, so
    that events committed before the call were not readable yet and were left for
    later; `held_back_by` then says which transaction (on PostgreSQL). Call
    [`catch_up_to_head()`][eventcore.ProjectionWorker.catch_up_to_head] to wait for them.
    """

    complete: bool
    """Whether every event committed before the call was processed."""
    held_back_by: str | None
    """What held the log back when `complete` is false (as far as the store can tell)."""

    def __new__(
        cls, applied: int, *, complete: bool = True, held_back_by: str | None = None
    ) -> Self:
        result = super().__new__(cls, applied)
        result.complete = complete
        result.held_back_by = held_back_by
        return result

    @property
    def applied(self) -> int:
        """The number of events applied."""
        return int(self)

    def __str__(self) -> str:
        return int.__repr__(self)  # the number, as for any `int`

    def __repr__(self) -> str:
        held = f", held_back_by={self.held_back_by!r}" if self.held_back_by else ""
        return f"CatchUpResult({int(self)}, complete={self.complete}{held})"


async def log_end(store: EventStore) -> LogPosition:
    """The log position of the last event committed so far, in log order.

    On PostgreSQL that is not always the event at the highest global position (a
    transaction that took a lower one can commit later); stores that can tell offer
    `log_end()`, the others are read in position order anyway.
    """
    end = getattr(store, "log_end", None)
    if end is not None:
        position: LogPosition = await end()
        return position
    head = await store.log_head()
    found = await store.log_position_of(head) if head else None
    return found or LogPosition()


async def is_readable(store: EventStore, position: LogPosition) -> bool:
    """Whether the log can be read up to `position` (nothing older is still open)."""
    if position == LogPosition():
        return True
    before = LogPosition(position.transaction_id, position.global_position - 1)
    return bool(await store.read_log(before, limit=1))


async def holdup(store: EventStore) -> str:
    """What holds the log back, as far as the store can tell (for error messages)."""
    describe = getattr(store, "blocking_transaction", None)
    found = await describe() if describe is not None else None
    if found:
        return f"held back by {found}"
    return "held back by a transaction still open on the server"


async def wait_until_readable(
    store: EventStore, position: LogPosition | int | None = None, *, timeout: float = 10.0
) -> LogPosition:
    """Wait until the log can be read up to `position`; return that log position.

    `position` is a [`LogPosition`][eventcore.LogPosition], a global position (as in
    an `AppendResult`), or `None` for the end of the log as of the call (every event
    committed so far). On PostgreSQL the log is read only below the oldest transaction
    still open on the server, so a transaction left open (by any program, in any
    database of the server) holds every reader back: after `timeout` seconds this
    raises [`CatchUpTimeoutError`][eventcore.CatchUpTimeoutError] naming the oldest
    such transaction. Other stores are readable at once.

    ```python
    result = await store.append("cs101", [NewEvent.of(SectionOpened(capacity=30))])
    await wait_until_readable(store, result.global_positions[-1])
    ```
    """
    if position is None:
        target = await log_end(store)
    elif isinstance(position, int):
        found = await store.log_position_of(position) if position else LogPosition()
        if found is None:
            raise ProjectionError(f"no event at global position {position}")
        target = found
    else:
        target = position
    delay = 0.005
    with anyio.move_on_after(timeout):
        while not await is_readable(store, target):
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.1)
        return target
    raise CatchUpTimeoutError(
        f"the log did not become readable up to global position {target.global_position} "
        f"(transaction {target.transaction_id}) within {timeout} s: "
        f"{await holdup(store)}"
    )
