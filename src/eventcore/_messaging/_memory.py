"""`InMemoryBroker`: a broker in the process, for tests and the embedded demo."""

from __future__ import annotations

import fnmatch
from collections import deque
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager

import anyio

from eventcore._messaging._broker import Delivery, PublishResult
from eventcore._messaging._message import Message

__all__ = ["InMemoryBroker", "InMemoryQueue"]


class InMemoryBroker:
    """A [`Publisher`][eventcore.Publisher] that delivers to in-process queues.

    Every message published is kept in `published` (for assertions) and copied into
    each queue bound to a matching topic pattern (`*` matches anything, as in
    `fnmatch`). Topics listed in `failing` refuse messages, to test retries.

    ```python
    broker = InMemoryBroker()
    queue = broker.queue("records", ["registration.*"])
    relay = OutboxRelay(store, broker)
    worker = ConsumerWorker(store, EnrolmentsConsumer(), queue)
    ```
    """

    def __init__(self) -> None:
        self.published: list[Message] = []
        self.failing: set[str] = set()
        self._queues: list[InMemoryQueue] = []

    def queue(self, name: str, patterns: Collection[str] = ("*",)) -> InMemoryQueue:
        """A queue receiving the messages whose topic matches one of `patterns`."""
        queue = InMemoryQueue(name, list(patterns))
        self._queues.append(queue)
        return queue

    async def publish(self, messages: Sequence[Message]) -> PublishResult:
        """Deliver `messages` to the matching queues (see `Publisher.publish`)."""
        failures: PublishResult = {}
        for message in messages:
            if message.topic in self.failing:
                failures[message.message_id] = f"topic {message.topic!r} is set to fail"
                continue
            self.published.append(message)
            for queue in self._queues:
                if queue.matches(message.topic):
                    queue.put(message)
        return failures

    async def close(self) -> None:
        """Nothing to close."""


class InMemoryQueue:
    """A [`MessageSource`][eventcore.MessageSource] fed by an `InMemoryBroker`.

    As a broker's queue does, it delivers again, marked redelivered, what was retried
    and what was not settled when a `deliveries()` block exited; `close()` ends the
    iterations under way (a later `deliveries()` starts again).
    """

    def __init__(self, name: str, patterns: list[str]) -> None:
        self.name = name
        self._patterns = patterns
        self._waiting: deque[tuple[Message, bool]] = deque()
        self._arrived = anyio.Event()
        self._closings = 0

    def matches(self, topic: str) -> bool:
        """Whether messages on `topic` come to this queue."""
        return any(fnmatch.fnmatchcase(topic, pattern) for pattern in self._patterns)

    def put(self, message: Message, *, redelivered: bool = False) -> None:
        """Enqueue `message` (the broker calls this; tests may too, to redeliver)."""
        self._waiting.append((message, redelivered))
        self._wake()

    @asynccontextmanager
    async def deliveries(self) -> AsyncIterator[AsyncIterator[Delivery]]:
        """Iterate the queue's messages as they arrive, until `close()`."""
        closings = self._closings
        unsettled: dict[_InMemoryDelivery, None] = {}  # in delivery order

        async def iterate() -> AsyncIterator[Delivery]:
            while closings == self._closings:
                if not self._waiting:
                    await self._arrived.wait()
                    continue
                message, redelivered = self._waiting.popleft()
                delivery = _InMemoryDelivery(self, message, redelivered, unsettled)
                unsettled[delivery] = None
                yield delivery

        try:
            yield iterate()
        finally:
            back = [(d.message, True) for d in unsettled]
            self._waiting.extendleft(reversed(back))  # in front, in their order
            if back:
                self._wake()

    async def close(self) -> None:
        """End the iterations under way."""
        self._closings += 1
        self._wake()

    def _wake(self) -> None:
        self._arrived.set()
        self._arrived = anyio.Event()


class _InMemoryDelivery:
    def __init__(
        self,
        queue: InMemoryQueue,
        message: Message,
        redelivered: bool,
        unsettled: dict[_InMemoryDelivery, None],
    ) -> None:
        self._queue = queue
        self._message = message
        self._redelivered = redelivered
        self._unsettled = unsettled

    @property
    def message(self) -> Message:
        return self._message

    @property
    def redelivered(self) -> bool:
        return self._redelivered

    async def ack(self) -> None:
        self._unsettled.pop(self, None)

    async def retry(self, delay: float) -> None:
        self._unsettled.pop(self, None)
        self._queue.put(self._message, redelivered=True)
