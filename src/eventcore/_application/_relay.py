"""`OutboxRelay`: publishes the outbox's messages to a broker, in order per partition key."""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import anyio

from eventcore._exceptions import StoreError
from eventcore._messaging._broker import Publisher, PublishResult
from eventcore._messaging._outbox import Outbox, OutboxEntry, OutboxStatus, Settlement
from eventcore._persistence._signal import AppendSignal

__all__ = ["OutboxRelay", "RelayMetrics"]

_log = logging.getLogger("eventcore.outbox")

# Other processes' commits wake a relay through NOTIFYs that stores send at most every
# 20 ms, so a commit right after one may send none: look again this soon after being busy.
_FOLLOW_UP = 0.05
_SETTLE_TIMEOUT = 10.0


class _OutboxStore(Protocol):
    @property
    def outbox(self) -> Outbox: ...

    def watch(self) -> AbstractAsyncContextManager[AppendSignal]: ...


@dataclass(frozen=True, slots=True)
class RelayMetrics:
    """What one relay has done since it started (see also `OutboxRelay.status()`)."""

    published: int
    """Messages the broker confirmed, counted once recorded as sent (a batch is recorded
    while the next one is published, or when the relay goes idle or stops)."""
    failed: int
    """Publish attempts that failed (each is retried, or dead-lettered)."""
    dead: int
    """Messages this relay gave up on."""
    batches: int
    publish_rate: float
    """Messages confirmed per second over the last ten seconds."""
    lanes: tuple[int, ...]
    """The outbox lanes this relay owns now."""
    broker_failures: int = 0
    """Batches in a row that failed as a whole (the broker is unreachable); 0 when healthy."""
    last_error: str | None = None
    """The last publish error, if any."""


class OutboxRelay:
    """Publishes the messages of a store's outbox to a broker, with at-least-once delivery.

    Run one or several (in other processes) per outbox: relays share the outbox's lanes
    (hashes of the partition keys) among themselves, so each key's messages are
    published by one relay at a time, in the order they were written. A relay wakes
    when messages are committed (in this process at once, in others through
    PostgreSQL `LISTEN`), and polls every `poll_interval` seconds besides.

    A message the broker refuses is retried after an exponential backoff with jitter
    (`backoff` seconds doubled per attempt, at most `max_backoff`); the later messages
    of its key in later batches wait for it (those in its own batch, sent with it,
    may have been confirmed already). After `max_attempts` refusals it is dead: listed by
    `outbox.dead_letters()` and re-driven by `outbox.redrive()` (or the CLI). When a
    whole batch fails (the broker is unreachable), no message is blamed: the relay
    keeps the batch and tries it again after the same kind of backoff, for as long as
    the outage lasts; so does a broker that confirms none of a batch in time (a
    blocked broker: the publishers raise `BrokerConnectionError` then).
    Published messages are deleted after `retention`.

    ```python
    relay = OutboxRelay(store, RabbitMqPublisher("amqp://guest:guest@localhost/"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(relay.run)
    ```

    Args:
        store: a store with an outbox (`SqlAlchemyEventStore`).
        publisher: where messages go.
        batch_size: messages claimed and published at once.
        lease: how long a relay owns its lanes without renewing; a relay that died
            has its lanes taken over after this long.
        relay_id: this relay's name in the lanes table (default: a random one).
    """

    def __init__(
        self,
        store: _OutboxStore,
        publisher: Publisher,
        *,
        batch_size: int = 500,
        max_attempts: int = 10,
        backoff: float = 0.5,
        max_backoff: float = 60.0,
        lease: float = 10.0,
        poll_interval: float = 0.5,
        retention: timedelta = timedelta(hours=24),
        relay_id: str | None = None,
    ) -> None:
        if batch_size < 1 or max_attempts < 1:
            raise ValueError("batch_size and max_attempts must be at least 1")
        self._store = store
        self._outbox = store.outbox
        self._publisher = publisher
        self._batch_size = batch_size
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._lease = timedelta(seconds=lease)
        self._poll_interval = poll_interval
        self._retention = retention
        self.relay_id = relay_id or f"relay-{uuid.uuid4().hex[:12]}"
        self._lanes: list[int] = []
        self._lanes_until = 0.0
        self._cleaned_at = 0.0
        self._counts = {"published": 0, "failed": 0, "dead": 0, "batches": 0}
        self._broker_failures = 0
        self._last_error: str | None = None
        self._recent: deque[tuple[float, int]] = deque()
        # The positions of each batch confirmed in full, to record as sent: that is done
        # while the next batch is being published.
        self._confirmed: list[list[int]] = []

    @property
    def metrics(self) -> RelayMetrics:
        """This relay's counters and publish rate."""
        now = time.monotonic()
        while self._recent and self._recent[0][0] < now - 10:
            self._recent.popleft()
        rate = sum(n for _, n in self._recent) / 10
        c = self._counts
        return RelayMetrics(
            c["published"],
            c["failed"],
            c["dead"],
            c["batches"],
            rate,
            tuple(self._lanes),
            self._broker_failures,
            self._last_error,
        )

    async def status(self) -> OutboxStatus:
        """The outbox's backlog: pending, retrying, dead, and the oldest message's age."""
        return await self._outbox.status()

    async def run(self) -> None:
        """Publish messages as they are committed, until cancelled; then give up the lanes."""
        try:
            async with self._store.watch() as signal:
                timeout = self._poll_interval
                while True:
                    seen = signal.notified
                    if await self._step() > 0:
                        timeout = _FOLLOW_UP
                        continue
                    woken = await signal.wait(timeout, since=seen)
                    timeout = _FOLLOW_UP if woken else self._poll_interval
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_SETTLE_TIMEOUT):
                await self._release()  # bounded: a hung database must not hang shutdown

    async def publish_pending(self) -> int:
        """Publish every message that is due now, then return how many were confirmed.

        For tests, scripts and a `--once` relay; `run` is the service loop.
        """
        before = self._counts["published"]
        try:
            while await self._step() > 0:
                pass
        finally:
            await self._release()
        return self._counts["published"] - before

    async def _step(self) -> int:
        """Claim and publish batches while there are any; returns how many messages were
        handled (0: idle). Each next batch is claimed, and the previous one settled,
        while the current one is being published; it is published only after it."""
        try:
            await self._settle_confirmed()  # left over by a database error
            await self._renew_lanes()
            await self._clean_up()
            batch = await self._claim()
            handled = 0
            try:
                while batch:
                    handled += len(batch)
                    batch = await self._publish_while_claiming(batch)
                    await self._renew_lanes()
                    await self._clean_up()
            finally:
                await self._settle_confirmed()
            return handled
        except StoreError as error:
            # The database is unavailable: claimed messages stay claimed until their
            # visibility ends, then go out again (a duplicate at worst, never a loss).
            _log.warning("outbox relay %s: database error, retrying: %s", self.relay_id, error)
            self._lanes_until = 0.0
            await anyio.sleep(min(self._max_backoff, max(self._poll_interval, 0.5)))
            return 0

    async def _claim(self, in_flight: Sequence[int] = ()) -> list[OutboxEntry]:
        return await self._outbox.claim(
            self.relay_id, self._lanes, self._batch_size, self._lease, in_flight
        )

    async def _publish_while_claiming(self, batch: list[OutboxEntry]) -> list[OutboxEntry]:
        """Publish `batch`, and meanwhile claim the next one and record the previous
        one as sent. Return the next batch, less the messages of keys that just failed
        (they wait behind the failure)."""
        following: list[OutboxEntry] = []
        failure: BaseException | None = None
        # Neither claimed again nor in the way of their keys' later messages: this
        # batch, and the previous one until it is recorded as sent.
        in_flight = [e.position for e in batch]
        in_flight += (position for positions in self._confirmed for position in positions)

        async def claim_following() -> None:
            try:
                following.extend(await self._claim(in_flight))
            except StoreError as error:  # the batch after will claim them
                _log.warning("outbox relay %s: cannot claim ahead: %s", self.relay_id, error)

        async def settle_confirmed() -> None:
            nonlocal failure
            try:
                await self._settle_confirmed()
            except StoreError as error:  # raised below, once this batch is published
                failure = error

        async with anyio.create_task_group() as group:
            group.start_soon(claim_following)
            if self._confirmed:
                group.start_soon(settle_confirmed)
            try:
                settlement = await self._publish(batch)
                if settlement is not None and not settlement.failed:
                    self._confirmed.append(list(settlement.sent))  # recorded alongside the next
                elif settlement is not None:
                    # Recorded at once, so that the next claim sees the failed messages.
                    await self._settle(settlement)
            except Exception as error:  # raised below as itself, not in an exception group
                failure, settlement = error, None
        if failure is not None:
            raise failure
        if settlement is None:  # the broker is unreachable: the next batch waits too
            return []
        failed = {p for p, _, _ in settlement.failed}
        failed_keys = {e.message.key for e in batch if e.position in failed}
        return [e for e in following if e.message.key not in failed_keys]

    async def _renew_lanes(self) -> None:
        now = time.monotonic()
        if now >= self._lanes_until:
            lanes = await self._outbox.claim_lanes(self.relay_id, self._lease)
            if lanes != self._lanes:
                _log.info("outbox relay %s owns lanes %s", self.relay_id, lanes)
            self._lanes = lanes
            self._lanes_until = now + self._lease.total_seconds() / 3

    async def _publish(self, batch: Sequence[OutboxEntry]) -> Settlement | None:
        """Publish `batch`; return which messages were confirmed and which failed
        (`None`: the whole batch failed, the broker is unreachable)."""
        try:
            failures: PublishResult = await self._publisher.publish([e.message for e in batch])
        except Exception as error:  # the whole batch failed: the broker is unreachable
            await self._wait_for_broker(error, len(batch))
            return None
        self._broker_failures = 0
        if not failures:
            return Settlement([e.position for e in batch], [])
        sent = [e.position for e in batch if e.message.message_id not in failures]
        failed = [
            (e.position, failures[e.message.message_id], self._retry_at(e))
            for e in batch
            if e.message.message_id in failures
        ]
        return Settlement(sent, failed)

    async def _settle_confirmed(self) -> None:
        """Record as sent the messages of batches the broker confirmed in full (they
        stay to be recorded if that fails)."""
        batches = len(self._confirmed)
        if not batches:
            return
        positions = [position for batch in self._confirmed[:batches] for position in batch]
        if not await self._settle(Settlement(positions, []), batches):
            raise StoreError(f"the database did not record a settlement in {_SETTLE_TIMEOUT} s")
        del self._confirmed[:batches]  # those confirmed meanwhile stay

    async def _settle(self, settlement: Settlement, batches: int = 1) -> bool:
        """Write what became of published batches, and count them; `False` if the
        database did not answer in time.

        Shielded: a relay cancelled between the broker's confirms and this update would
        publish the batch again when it restarts (bounded, should the database hang).
        """
        with anyio.CancelScope(shield=True), anyio.move_on_after(_SETTLE_TIMEOUT) as scope:
            await self._outbox.settle(self.relay_id, settlement)
        if scope.cancelled_caught:  # they stay claimed, and go out again later
            return False
        self._count(len(settlement.sent), settlement.failed, batches)
        return True

    async def _wait_for_broker(self, error: Exception, count: int) -> None:
        """Back off after a failure of the whole batch; it stays claimed by this relay,
        which claims it again next (or another relay, once the claim has run out)."""
        self._broker_failures += 1
        self._last_error = repr(error)
        self._counts["failed"] += count
        delay = self._delay(self._broker_failures - 1)
        _log.warning(
            "outbox relay %s: publish failed (%d in a row), retrying in %.1f s: %r",
            self.relay_id, self._broker_failures, delay, error,
        )  # fmt: skip
        await anyio.sleep(delay)

    def _delay(self, attempts: int) -> float:
        """Exponential backoff with jitter after `attempts` earlier failures."""
        delay = min(self._max_backoff, self._backoff * 2.0**attempts)
        return delay * random.uniform(0.5, 1.5)

    def _retry_at(self, entry: OutboxEntry) -> datetime | None:
        """When to try `entry` again after this failure; `None`: give up on it."""
        if entry.attempts + 1 >= self._max_attempts:
            return None
        delay = min(self._max_backoff, self._backoff * 2**entry.attempts)
        return datetime.now(UTC) + timedelta(seconds=delay * random.uniform(0.5, 1.5))

    def _count(
        self, sent: int, failed: Sequence[tuple[int, str, datetime | None]], batches: int
    ) -> None:
        dead = sum(1 for _, _, retry_at in failed if retry_at is None)
        if failed:
            self._last_error = failed[-1][1]
        if dead:
            _log.error("outbox relay %s: %d message(s) dead-lettered", self.relay_id, dead)
        c = self._counts
        c["published"] += sent
        c["failed"] += len(failed)
        c["dead"] += dead
        c["batches"] += batches
        self._recent.append((time.monotonic(), sent))

    async def _clean_up(self) -> None:
        now = time.monotonic()
        if now - self._cleaned_at >= 60:
            self._cleaned_at = now
            deleted = await self._outbox.delete_sent(datetime.now(UTC) - self._retention)
            if deleted:
                _log.info("outbox relay %s: deleted %d sent messages", self.relay_id, deleted)

    async def _release(self) -> None:
        self._lanes, self._lanes_until = [], 0.0
        try:
            await self._outbox.release_lanes(self.relay_id)
        except StoreError as error:  # the lanes' leases then just run out
            _log.warning("outbox relay %s: cannot release its lanes: %s", self.relay_id, error)
