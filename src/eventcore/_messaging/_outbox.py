"""The `Outbox` interface: messages stored with the events, until a relay publishes them."""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from eventcore._messaging._message import Message

__all__ = ["LANES", "Outbox", "OutboxEntry", "OutboxStatus", "Settlement", "lane_of"]

LANES = 32
"""How many lanes the outbox's partition keys are hashed into (fixed: stored per row)."""


def lane_of(key: str) -> int:
    """The lane of partition key `key`: a stable hash, the same in every process."""
    return zlib.crc32(key.encode()) % LANES


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A message in the outbox, with where it stands."""

    position: int
    message: Message
    attempts: int
    """Failed publish attempts so far."""
    last_error: str | None = None
    sent_at: datetime | None = None
    dead_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    """The outbox's backlog, as the relay's health figures.

    - `pending`: messages not yet published (`retrying` of them have failed before).
    - `oldest_pending_age`: how long the oldest pending message has waited (`None`
      when nothing is pending): the figure to alert on.
    - `dead`: messages given up on after too many failures (re-drive them).
    - `sent`: published messages still kept (until the retention period ends).
    """

    pending: int
    retrying: int
    dead: int
    sent: int
    oldest_pending_age: timedelta | None


@dataclass(frozen=True, slots=True)
class Settlement:
    """What became of a claimed batch: which messages were confirmed, which failed."""

    sent: Sequence[int]
    """Positions of the messages the broker confirmed."""
    failed: Sequence[tuple[int, str, datetime | None]]
    """`(position, error, retry_at)` of each failure; `retry_at` `None`: give up (dead)."""


class Outbox(Protocol):
    """Where the unit of work writes messages, and where relays claim and settle them."""

    async def claim_lanes(self, relay_id: str, lease: timedelta) -> list[int]:
        """Register `relay_id` as alive and return the lanes it owns now.

        The lanes are shared out evenly among the live relays; the caller owns its
        lanes until `lease` from now, and must call again before then to keep them.
        """
        ...

    async def release_lanes(self, relay_id: str) -> None:
        """Give up `relay_id`'s lanes and registration (at shutdown)."""
        ...

    async def claim(
        self,
        relay_id: str,
        lanes: Collection[int],
        limit: int,
        visibility: timedelta,
        in_flight: Collection[int] = (),
    ) -> list[OutboxEntry]:
        """Claim up to `limit` publishable messages of `lanes`, oldest first.

        A message is publishable when it is pending, due, not claimed by another relay
        and no earlier message of its partition key is still waiting (in backoff, or
        claimed elsewhere): so one key's messages go out in order. `in_flight` are
        positions this relay claimed before and is publishing now: they are not
        claimed again, and do not hold back the later messages of their keys (the
        caller publishes those only after them).
        """
        ...

    async def settle(self, relay_id: str, settlement: Settlement) -> None:
        """Record a claimed batch's outcome."""
        ...

    async def delete_sent(self, before: datetime, limit: int = 10_000) -> int:
        """Delete up to `limit` messages sent before `before`; return how many."""
        ...

    async def status(self) -> OutboxStatus:
        """The backlog figures (see `OutboxStatus`)."""
        ...

    async def dead_letters(self, limit: int = 100) -> list[OutboxEntry]:
        """The messages given up on, oldest first."""
        ...

    async def redrive(self, message_ids: Collection[uuid.UUID] | None = None) -> int:
        """Make dead messages (all, or those of `message_ids`) pending again; return how many."""
        ...

    async def purge(self, *, dead: bool = False) -> int:
        """Delete every sent message now (and the dead ones too with `dead=True`)."""
        ...
