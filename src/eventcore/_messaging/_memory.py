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
    """A [`MessageSource`][eventcore.MessageSource] fed by an `InMemoryBroker`."""

    def __init__(self, name: str, patterns: list[str]) -> None:
        self.name = name
        self._patterns = patterns
        self._waiting: deque[tuple[Message, bool]] = deque()
        self._arrived = anyio.Event()

    def matches(self, topic: str) -> bool:
        """Whether messages on `topic` come to this queue."""
        return any(fnmatch.fnmatchcase(topic, pattern) for pattern in self._patterns)

    def put(self, message: Message, *, redelivered: bool = False) -> None:
        """Enqueue `message` (the broker calls this; tests may too, to redeliver)."""
        self._waiting.append((message, redelivered))
        self._arrived.set()

    @asynccontextmanager
    async def deliveries(self) -> AsyncIterator[AsyncIterator[Delivery]]:
        """Iterate the queue's messages as they arrive."""

        async def iterate() -> AsyncIterator[Delivery]:
            while True:
                while self._waiting:
                    message, redelivered = self._waiting.popleft()
                    yield _InMemoryDelivery(self, message, redelivered)
                await self._arrived.wait()
                self._arrived = anyio.Event()

        yield iterate()

    async def close(self) -> None:
        """Nothing to close."""


class _InMemoryDelivery:
    def __init__(self, queue: InMemoryQueue, message: Message, redelivered: bool) -> None:
        self._queue = queue
        self._message = message
        self._redelivered = redelivered

    @property
    def message(self) -> Message:
        return self._message

    @property
    def redelivered(self) -> bool:
        return self._redelivered

    async def ack(self) -> None:
        pass

    async def retry(self, delay: float) -> None:
        self._queue.put(self._message, redelivered=True)
