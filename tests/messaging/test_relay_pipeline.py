"""The relay's pipeline: the next batch is claimed, and the last one settled, while the
current one is published; neither may publish a message twice or out of order."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import timedelta

import anyio
import pytest

from eventcore import (
    InMemoryBroker,
    Message,
    OutboxRelay,
    PublishResult,
    SqlAlchemyEventStore,
)
from eventcore._messaging._outbox import Outbox, OutboxEntry, Settlement
from eventcore._persistence._signal import AppendSignal

pytestmark = pytest.mark.anyio

_KEYS = 7


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> SqlAlchemyEventStore:
    """A SQL store (its outbox is what the relay claims from)."""
    name = {"sqlite": "sqlite_store", "postgres": "postgres_event_store"}[request.param]
    found: SqlAlchemyEventStore = request.getfixturevalue(name)
    return found


class SlowSettling:
    """A store whose outbox takes `delay` seconds to record each settlement, and
    says when one begins."""

    def __init__(self, store: SqlAlchemyEventStore, delay: float) -> None:
        self._store = store
        self._delay = delay
        self.settling = anyio.Event()
        self.settled = 0

    @property
    def outbox(self) -> Outbox:
        return self  # type: ignore[return-value]  # the methods the relay calls

    def watch(self) -> AbstractAsyncContextManager[AppendSignal]:
        return self._store.watch()

    async def settle(self, relay_id: str, settlement: Settlement) -> None:
        self.settling.set()
        await anyio.sleep(self._delay)
        await self._store.outbox.settle(relay_id, settlement)
        self.settled += 1

    async def claim(self, *args: object, **kwargs: object) -> list[OutboxEntry]:
        return await self._store.outbox.claim(*args, **kwargs)  # type: ignore[arg-type]

    async def claim_lanes(self, relay_id: str, lease: timedelta) -> list[int]:
        return await self._store.outbox.claim_lanes(relay_id, lease)

    async def release_lanes(self, relay_id: str) -> None:
        await self._store.outbox.release_lanes(relay_id)

    def __getattr__(self, name: str) -> object:
        return getattr(self._store.outbox, name)


async def write(store: SqlAlchemyEventStore, count: int) -> list[Message]:
    """`count` messages over a few keys, written to the outbox in that order."""
    messages = [
        Message(
            message_id=uuid.uuid4(),
            topic="tests.pipeline",
            key=f"key-{n % _KEYS}",
            type="tests.Numbered",
            schema_version=1,
            payload=b'{"n": %d}' % n,
        )
        for n in range(count)
    ]
    async with store.engine.begin() as conn:
        await store.outbox.write(conn, messages)
    return messages


def by_key(messages: list[Message]) -> dict[str, list[uuid.UUID]]:
    keys: dict[str, list[uuid.UUID]] = {}
    for message in messages:
        keys.setdefault(message.key, []).append(message.message_id)
    return keys


async def test_a_slow_settlement_neither_republishes_nor_reorders(
    store: SqlAlchemyEventStore,
) -> None:
    written = await write(store, 600)
    slow = SlowSettling(store, delay=0.05)
    broker = InMemoryBroker()
    relay = OutboxRelay(slow, broker, batch_size=50)

    assert await relay.publish_pending() == 600

    published = [m.message_id for m in broker.published]
    assert len(published) == len(set(published)) == 600  # each once
    assert by_key(broker.published) == by_key(written)  # and in order per key
    assert 0 < slow.settled < 12  # batches confirmed meanwhile are recorded together
    status = await store.outbox.status()
    assert (status.pending, status.sent) == (0, 600)
    assert (relay.metrics.published, relay.metrics.batches) == (600, 12)


async def test_a_relay_cancelled_before_settling_a_confirmed_batch_still_settles_it(
    store: SqlAlchemyEventStore,
) -> None:
    await write(store, 40)
    slow = SlowSettling(store, delay=0.3)
    broker = InMemoryBroker()
    relay = OutboxRelay(slow, broker, batch_size=20)

    async with anyio.create_task_group() as group:
        group.start_soon(relay.run)
        await slow.settling.wait()
        group.cancel_scope.cancel()  # while the first confirmed batch is being recorded

    status = await store.outbox.status()
    published = len(broker.published)
    assert status.sent == published > 0  # whatever the broker confirmed is recorded
    assert status.pending == 40 - published
    again = InMemoryBroker()
    assert await OutboxRelay(store, again).publish_pending() == 40 - published
    assert not {m.message_id for m in again.published} & {
        m.message_id for m in broker.published
    }  # nothing went out twice


async def test_a_failed_key_holds_back_its_messages_claimed_ahead(
    store: SqlAlchemyEventStore,
) -> None:
    written = await write(store, 140)
    # key-3 fails once, from its first message on, for the rest of that batch; the
    # batch claimed meanwhile holds key-3's next messages, which must wait their turn.
    broker = FailingKeyOnce("key-3")
    relay = OutboxRelay(store, broker, batch_size=20, backoff=0.01, max_backoff=0.01)

    with anyio.fail_after(10):
        while len(broker.published) < 140:
            await relay.publish_pending()

    assert len({m.message_id for m in broker.published}) == 140
    assert by_key(broker.published) == by_key(written)


class FailingKeyOnce(InMemoryBroker):
    """A broker that refuses the messages of one key in the first batch holding any."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self._key: str | None = key

    async def publish(self, messages: Sequence[Message]) -> PublishResult:
        key = self._key
        if key is None or all(m.key != key for m in messages):
            return await super().publish(messages)
        self._key = None
        await super().publish([m for m in messages if m.key != key])
        return {m.message_id: "refused, once" for m in messages if m.key == key}
