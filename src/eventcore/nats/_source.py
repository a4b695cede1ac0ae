"""`NatsSource`: consumes a JetStream stream through a durable pull consumer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from contextlib import asynccontextmanager

import anyio
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from eventcore import BrokerConnectionError, ConsumerError, Delivery, Message, MessageHeaders
from eventcore.nats._connection import CONNECTION_ERRORS, Link, close_quietly, connect, safe_servers
from eventcore.nats._publisher import MSG_ID_HEADER

__all__ = ["NatsDelivery", "NatsSource", "decode"]

_log = logging.getLogger("eventcore.nats")

# How long one pull request waits on the server for messages. Short, so that a pull
# left behind when a `deliveries()` block exits expires soon and grabs nothing.
_FETCH_WAIT = 2.0
# After a fetch that found nothing, the server must answer a ping within this many
# seconds, or the connection counts as stalled.
_PING_WAIT = 2


def decode(msg: Msg) -> Message:
    """The `Message` in a JetStream message (raises `ValueError` if it is not one).

    NATS's own headers (`Nats-*`) are left out; `Nats-Msg-Id` stands in for a missing
    `message-id` header, so messages published by other clients decode too.
    """
    raw = msg.headers or {}
    headers = {key: value for key, value in raw.items() if not key.startswith("Nats-")}
    if MSG_ID_HEADER in raw:
        headers.setdefault(MessageHeaders.MESSAGE_ID, raw[MSG_ID_HEADER])
    return Message.from_headers(msg.subject, msg.data, headers)


class NatsDelivery:
    """A message received from JetStream; settle it with `ack` or `retry`."""

    __slots__ = ("_message", "_msg", "_unsettled")

    def __init__(self, msg: Msg, message: Message, unsettled: set[NatsDelivery]) -> None:
        self._msg = msg
        self._message = message
        self._unsettled = unsettled
        unsettled.add(self)

    @property
    def message(self) -> Message:
        """The message received."""
        return self._message

    @property
    def redelivered(self) -> bool:
        """Whether JetStream delivered it before (its delivery count is above 1)."""
        return self._msg.metadata.num_delivered > 1

    @property
    def msg(self) -> Msg:
        """The nats-py message, for what the `Delivery` protocol does not cover."""
        return self._msg

    async def ack(self) -> None:
        """Done with it: JetStream will not deliver it to this consumer again."""
        await self._settle("ack", self._msg.ack())

    async def retry(self, delay: float) -> None:
        """Have JetStream deliver it again after `delay` seconds (a `nak` with delay)."""
        await self._settle("nak", self._msg.nak(delay=delay))

    async def _settle(self, action: str, settling: Awaitable[None]) -> None:
        try:
            await settling
        except CONNECTION_ERRORS as error:
            raise BrokerConnectionError(
                f"cannot {action} message {self._message.message_id}: the connection to "
                f"NATS closed ({error!r}); JetStream will deliver it again"
            ) from error
        self._unsettled.discard(self)


class _Deliveries:
    """The async iterator `NatsSource.deliveries()` yields: fetches batches and decodes."""

    def __init__(
        self, link: Link, subscription: JetStreamContext.PullSubscription, batch: int
    ) -> None:
        self._link = link
        self._subscription = subscription
        self._batch = batch
        self._fetched: deque[Msg] = deque()
        self._unsettled: set[NatsDelivery] = set()
        self.stopped = False

    def __aiter__(self) -> _Deliveries:
        return self

    async def __anext__(self) -> Delivery:
        while True:
            if self.stopped:
                raise StopAsyncIteration
            if not self._fetched:
                await self._fetch()
                continue
            msg = self._fetched.popleft()
            try:
                return NatsDelivery(msg, decode(msg), self._unsettled)
            except ValueError as error:
                await self._terminate(msg, error)

    async def _fetch(self) -> None:
        if self._link.lost.done():
            self._raise_lost(self._link.client.last_error)
        try:
            self._fetched.extend(await self._subscription.fetch(self._batch, timeout=_FETCH_WAIT))
        except TimeoutError:
            await self._ping()  # nothing to deliver yet: is the server still there?
        except nats.js.errors.APIError as error:
            raise ConsumerError(f"JetStream refused to deliver: {error}") from error
        except CONNECTION_ERRORS as error:
            self._raise_lost(error)

    async def _ping(self) -> None:
        try:
            await self._link.client.flush(timeout=_PING_WAIT)
        except (TimeoutError, nats.errors.Error, OSError) as error:
            self._raise_lost(error)

    def _raise_lost(self, error: BaseException | None) -> None:
        if self.stopped:
            raise StopAsyncIteration
        raise BrokerConnectionError(
            f"the connection to NATS closed or stalled while consuming: {error!r}"
        )

    async def _terminate(self, msg: Msg, error: Exception) -> None:
        _log.warning(
            "terminating an undecodable message on NATS subject %r (stream sequence %s): "
            "%s; JetStream will not deliver it again (it stays in the stream)",
            msg.subject,
            msg.metadata.sequence.stream,
            error,
        )
        try:
            await msg.term()
        except CONNECTION_ERRORS as lost:
            self._raise_lost(lost)

    async def release(self) -> None:
        """Hand back what was fetched but not settled, so JetStream redelivers it now
        rather than after the ack wait; then stop pulling."""
        with contextlib.suppress(Exception):
            for delivery in list(self._unsettled):
                await delivery.msg.nak()
            while self._fetched:
                await self._fetched.popleft().nak()
            await self._subscription.unsubscribe()


class NatsSource:
    """Consumes a JetStream stream through a durable pull consumer.

    `deliveries()` connects, creates (or updates) the durable consumer `durable` on
    `stream`, filtered on `subjects` (wildcards allowed; several need NATS 2.10+),
    with explicit acks, at most `max_ack_pending` unacknowledged messages and an ack
    wait of `ack_wait` seconds, and fetches up to `max_ack_pending` messages at a time:

    ```python
    async with source.deliveries() as deliveries:
        async for delivery in deliveries:
            ...  # handle delivery.message
            await delivery.ack()
    ```

    The stream must exist (create it with [`ensure_stream`][eventcore.nats.ensure_stream]
    or a [`NatsPublisher`][eventcore.nats.NatsPublisher] given `stream` and `subjects`).
    `retry(delay)` naks the message with that delay; `redelivered` is true from its
    second delivery on. A message that cannot be decoded into a
    [`Message`][eventcore.Message] is logged (a warning on the `eventcore.nats` logger)
    and terminated (`term`): JetStream does not deliver it again, and it stays in the
    stream for inspection (a server advisory reports it). When the connection drops, or
    stalls (while idle, it pings the server every few seconds), the iteration raises
    [`BrokerConnectionError`][eventcore.BrokerConnectionError]; a new `deliveries()`
    block reconnects. Messages not settled when the block exits are nak'ed, so
    JetStream redelivers them at once.
    """

    def __init__(
        self,
        servers: str | Sequence[str],
        *,
        stream: str,
        subjects: str | Iterable[str],
        durable: str,
        max_ack_pending: int = 100,
        ack_wait: float = 30.0,
        connect_timeout: float = 5.0,
    ) -> None:
        if max_ack_pending < 1:
            raise ValueError(f"max_ack_pending must be at least 1, not {max_ack_pending}")
        self._servers = [servers] if isinstance(servers, str) else list(servers)
        self._subjects = [subjects] if isinstance(subjects, str) else list(subjects)
        if not self._subjects:
            raise ValueError("subjects must name at least one subject")
        self._stream = stream
        self._durable = durable
        self._max_ack_pending = max_ack_pending
        self._ack_wait = ack_wait
        self._connect_timeout = connect_timeout
        # The open connections, each with its iterator (once subscribed).
        self._links: dict[Link, _Deliveries | None] = {}

    @asynccontextmanager
    async def deliveries(self) -> AsyncIterator[AsyncIterator[Delivery]]:
        """An async context manager: pull from the durable consumer while the block is
        open, and iterate the deliveries.

        Raises `BrokerConnectionError` if NATS cannot be reached, and `ConsumerError`
        if the stream does not exist or JetStream refuses the consumer's settings.
        """
        link = await connect(self._servers, self._connect_timeout, timeout=self._connect_timeout)
        self._links[link] = None
        try:
            async with asyncio.timeout(self._connect_timeout):
                subscription = await self._subscribe(link.jetstream)
        except BaseException as error:
            await self._close(link)
            if isinstance(error, TimeoutError | nats.errors.Error | OSError):
                raise BrokerConnectionError(
                    f"cannot subscribe to JetStream stream {self._stream!r} at "
                    f"{safe_servers(self._servers)}: {error!r}"
                ) from error
            raise
        deliveries = self._links[link] = _Deliveries(link, subscription, self._max_ack_pending)
        try:
            yield deliveries
        finally:
            with anyio.move_on_after(self._connect_timeout, shield=True):
                await deliveries.release()
            await self._close(link)

    async def _subscribe(self, js: JetStreamContext) -> JetStreamContext.PullSubscription:
        config = ConsumerConfig(
            durable_name=self._durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            max_ack_pending=self._max_ack_pending,
            ack_wait=self._ack_wait,
        )
        if len(self._subjects) == 1:
            config.filter_subject = self._subjects[0]
        else:
            config.filter_subjects = self._subjects
        try:
            await js.add_consumer(self._stream, config)
        except nats.js.errors.NotFoundError as error:
            raise ConsumerError(
                f"JetStream stream {self._stream!r} does not exist: create it first "
                f"(eventcore.nats.ensure_stream) ({error})"
            ) from error
        except nats.js.errors.APIError as error:
            raise ConsumerError(
                f"cannot create durable consumer {self._durable!r} on JetStream stream "
                f"{self._stream!r} for subjects {self._subjects}: {error}"
            ) from error
        return await js.pull_subscribe_bind(durable=self._durable, stream=self._stream)

    async def _close(self, link: Link) -> None:
        deliveries = self._links.pop(link, None)
        if deliveries is not None:
            deliveries.stopped = True
        # Shielded (close_quietly is bounded): consumers are stopped by cancelling them,
        # and an interrupted close would leak the connection's socket and tasks.
        with anyio.CancelScope(shield=True):
            await close_quietly(link.client, self._connect_timeout)

    async def close(self) -> None:
        """Close the open `deliveries()` connections, ending their iterations
        (idempotent)."""
        for link in list(self._links):
            await self._close(link)
