"""`Consumer`: handles integration events from a broker, each exactly once in effect."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar, Protocol, TypeVar

import anyio
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from eventcore._application._unit_of_work import UnitOfWork
from eventcore._domain._handlers import cached_handlers
from eventcore._domain._integration import IntegrationEvent, IntegrationMapping
from eventcore._domain._metadata import message_context
from eventcore._exceptions import (
    BrokerConnectionError,
    ConsumerError,
    MessageDecodeError,
    StoreError,
)
from eventcore._messaging._broker import Delivery, MessageSource
from eventcore._messaging._encoding import decode_event
from eventcore._messaging._message import Message
from eventcore._persistence._store import EventStore

__all__ = ["Consumer", "ConsumerContext", "ConsumerWorker", "Handling", "database_away", "handles"]

_log = logging.getLogger("eventcore.consumers")
_MARK = "__eventcore_handles__"
_H = TypeVar("_H", bound=Callable[..., Awaitable[None]])


def handles(handler: _H) -> _H:
    """Mark an async method of a `Consumer` as the handler of one integration event type.

    The type is read from the annotation of the event parameter; the second parameter
    is the [`ConsumerContext`][eventcore.ConsumerContext].
    """
    setattr(handler, _MARK, True)
    return handler


class _Inbox(Protocol):
    async def record(self, conn: AsyncConnection, consumer: str, message_id: uuid.UUID) -> bool: ...

    async def is_dead(
        self, conn: AsyncConnection, consumer: str, message_id: uuid.UUID
    ) -> bool: ...

    async def clear_failures(
        self, conn: AsyncConnection, consumer: str, message_id: uuid.UUID
    ) -> None: ...

    async def record_failure(
        self, consumer: str, message: Message, error: str, max_attempts: int
    ) -> tuple[int, bool]: ...

    async def dead_letters(self, consumer: str | None = None) -> Sequence[_DeadLetter]: ...


class _DeadLetter(Protocol):
    @property
    def message(self) -> Message: ...


class ConsumerContext:
    """What a consumer's handler gets besides the event: the message and its transaction."""

    def __init__(self, message: Message, unit_of_work: UnitOfWork) -> None:
        self.message = message
        """The message as received: id, topic, key, headers."""
        self.unit_of_work = unit_of_work
        """The transaction the message is handled in: load and change aggregates with
        `unit_of_work.repository(...)`; it commits together with the inbox record."""

    @property
    def connection(self) -> AsyncConnection:
        """The transaction's SQLAlchemy connection, for a read model of your own."""
        return self.unit_of_work.connection


class Consumer:
    """Base class of consumers: named, with one `@handles` handler per integration event.

    The `name` (a class keyword, default: the class name) keys the inbox: keep it
    stable. A message is handled in one transaction that also records its id in the
    inbox, so a message delivered again (brokers deliver at least once) has no second
    effect. A handler that raises is retried (the broker redelivers) up to
    `max_attempts` times (a class keyword, default 5); then the message is dead: kept
    in the inbox's failures for inspection, and acknowledged. Messages of types with
    no handler are acknowledged and ignored.

    ```python
    class EnrolmentsConsumer(Consumer, name="records.enrolments"):
        @handles
        async def _enrolled(self, event: StudentEnrolled, context: ConsumerContext) -> None:
            await context.connection.execute(insert(enrolments).values(...))
    ```
    """

    name: ClassVar[str] = "Consumer"
    max_attempts: ClassVar[int] = 5

    def __init_subclass__(
        cls, *, name: str | None = None, max_attempts: int | None = None, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        cls.name = name or cls.__name__
        if max_attempts is not None:
            if max_attempts < 1:
                raise ConsumerError(f"{cls.__name__}: max_attempts must be at least 1")
            cls.max_attempts = max_attempts

    @classmethod
    def handlers(cls) -> dict[str, tuple[type[IntegrationEvent], Callable[..., Any]]]:
        """The event class and handler of each integration event type name handled."""
        found = cached_handlers(cls, _MARK, ConsumerError, IntegrationEvent)
        return {event.integration_type_name: (event, h) for event, h in found.items()}


class Handling:
    """How a consumer handles one message: in a unit of work on `store` that records the
    message id in the inbox, with the message's correlation id, and its id as causation,
    on what it causes."""

    def __init__(
        self, store: EventStore, consumer: Consumer, mappings: Sequence[IntegrationMapping]
    ) -> None:
        inbox = getattr(store, "inbox", None)
        if inbox is None:
            raise ConsumerError(f"{type(store).__name__} has no inbox: use a SqlAlchemyEventStore")
        self.inbox: _Inbox = inbox
        self._store = store
        self._consumer = consumer
        self._mappings = list(mappings)

    def decode(self, message: Message) -> tuple[IntegrationEvent, Callable[..., Any]] | None:
        """The event and its handler; `None` if the consumer does not handle its type.
        Raises `MessageDecodeError` if the message does not fit the event's class."""
        found = type(self._consumer).handlers().get(message.type)
        if found is None:
            return None
        event_class, handler = found
        return decode_event(message, event_class), handler

    async def handle_once(
        self,
        message: Message,
        event: IntegrationEvent,
        handler: Callable[..., Any],
        *,
        replaying: bool = False,
    ) -> bool:
        """Run `handler` unless the inbox has the message (or, unless `replaying`, the
        consumer gave up on it); whether it ran. Its failures are cleared on success."""
        name, inbox = self._consumer.name, self.inbox
        correlation = message.correlation_id or str(message.message_id)
        with message_context(message.message_id, correlation_id=correlation):
            async with UnitOfWork(self._store, mappings=self._mappings) as uow:
                conn = uow.connection
                if not await inbox.record(conn, name, message.message_id):
                    return False
                if not replaying and await inbox.is_dead(conn, name, message.message_id):
                    return False  # a late redelivery of a message given up on
                await handler(self._consumer, event, ConsumerContext(message, uow))
                await inbox.clear_failures(conn, name, message.message_id)
                await uow.commit()
        return True

    async def record_failure(
        self, message: Message, error: Exception, max_attempts: int
    ) -> tuple[int, bool]:
        """Count a failed attempt (see `SqlAlchemyInbox.record_failure`)."""
        return await self.inbox.record_failure(
            self._consumer.name, message, repr(error), max_attempts
        )


class ConsumerWorker:
    """Feeds a `Consumer` the messages of a `MessageSource`, one transaction each.

    Each message runs in a [`UnitOfWork`][eventcore.UnitOfWork] on `store` that also
    records the message id in the inbox (so duplicates are skipped), with the message's
    correlation id and its id as causation on any event it causes. `mappings` and
    `projectors` are passed to that unit of work (a consumer's events can publish
    integration events in turn).

    ```python
    worker = ConsumerWorker(store, EnrolmentsConsumer(), RabbitMqSource(url, queue="records"))
    await worker.run()
    ```
    """

    def __init__(
        self,
        store: EventStore,
        consumer: Consumer,
        source: MessageSource,
        *,
        mappings: Sequence[IntegrationMapping] = (),
        retry_delay: float = 1.0,
    ) -> None:
        self._handling = Handling(store, consumer, mappings)
        self._consumer = consumer
        self._source = source
        self._retry_delay = retry_delay
        self.handled = 0
        """Messages handled (duplicates and dead ones not counted)."""
        self.duplicates = 0
        """Deliveries skipped because the inbox had them already."""

    async def run(self) -> None:
        """Receive and handle messages until cancelled (or the source ends).

        When the broker connection drops (`BrokerConnectionError`), it subscribes again
        after a backoff (doubling up to 30 s), for as long as the broker is away:
        unacknowledged messages are redelivered, and the inbox absorbs any duplicate.
        """
        failures = 0
        while True:
            try:
                async with self._source.deliveries() as deliveries:
                    async for delivery in deliveries:
                        failures = 0
                        await self.handle(delivery)
                return
            except BrokerConnectionError as error:
                failures += 1
                delay = min(30.0, max(self._retry_delay, 0.1) * 2 ** (failures - 1))
                _log.warning(
                    "consumer %s: broker connection lost (%d in a row), again in %.1f s: %s",
                    self._consumer.name, failures, delay, error,
                )  # fmt: skip
                await anyio.sleep(delay)

    async def handle(self, delivery: Delivery) -> None:
        """Handle one delivery and settle it with the broker."""
        message = delivery.message
        try:
            decoded = self._handling.decode(message)
        except MessageDecodeError as error:
            await self._give_up(delivery, error, max_attempts=1)
            return
        if decoded is None:  # a type this consumer does not handle
            await delivery.ack()
            return
        try:
            done = await self._handling.handle_once(message, *decoded)
        except Exception as error:
            if database_away(error):  # the database, not the message: do not count it
                _log.warning("consumer %s: database error: %s", self._consumer.name, error)
                await delivery.retry(self._retry_delay)
            else:
                await self._give_up(delivery, error, max_attempts=self._consumer.max_attempts)
            return
        if done:
            self.handled += 1
        else:
            self.duplicates += 1
        await delivery.ack()

    async def _give_up(self, delivery: Delivery, error: Exception, *, max_attempts: int) -> None:
        message, name = delivery.message, self._consumer.name
        try:
            attempts, dead = await self._handling.record_failure(message, error, max_attempts)
        except StoreError as failure:  # cannot count it: let the broker deliver it again
            _log.warning("consumer %s: cannot record a failure: %s", name, failure)
            await delivery.retry(self._retry_delay)
            return
        if dead:
            _log.error(
                "consumer %s gave up on message %s (%s) after %d attempt(s): %r",
                name, message.message_id, message.type, attempts, error,
            )  # fmt: skip
            await delivery.ack()
        else:
            _log.warning("consumer %s: message %s failed: %r", name, message.message_id, error)
            await delivery.retry(self._retry_delay * 2 ** (attempts - 1))


def database_away(error: Exception) -> bool:
    """Whether `error` says the database is unavailable (rather than the handler failed)."""
    if isinstance(error, StoreError):
        return True
    if isinstance(error, DBAPIError):
        return error.connection_invalidated or isinstance(error, OperationalError | InterfaceError)
    return False
