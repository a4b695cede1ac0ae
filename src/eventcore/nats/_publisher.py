"""`NatsPublisher`: publishes messages to JetStream, pipelined, waiting for the acks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from types import TracebackType

import nats.errors
import nats.js.errors

from eventcore import BrokerConnectionError, Message, MessageHeaders, PublishResult
from eventcore.nats._acks import ACKED, NO_STREAM, AckInbox, Batch
from eventcore.nats._connection import (
    CONNECTION_ERRORS,
    DEFAULT_SERVERS,
    Link,
    close_quietly,
    connect,
    ensure_stream,
    safe_servers,
)

__all__ = ["MSG_ID_HEADER", "NatsPublisher"]

MSG_ID_HEADER = "Nats-Msg-Id"
"""The header JetStream de-duplicates on (within the stream's duplicate window)."""

# Sending rarely waits: let other tasks (the relay claiming its next batch) run now and then.
_YIELD_EVERY = 50


class NatsPublisher:
    """Publishes messages to NATS JetStream and waits for JetStream's acks.

    Each message goes to the subject `message.topic` with its payload, and headers
    [`Message.all_headers()`][eventcore.Message.all_headers] plus `Nats-Msg-Id` (the
    message id): JetStream stores a message id once per duplicate window, so a batch
    the relay publishes again is not stored twice.

    `publish` sends a batch in order on one connection without waiting between
    messages, each with a reply subject for its ack (as nats-py's `publish_async`
    does, with one subscription for all acks), then waits for all the acks, at most
    `publish_timeout` seconds. It returns the messages that failed, each with why: no
    stream captures the subject (no responders), JetStream refused it, or it was not
    acknowledged in time (then the connection is replaced, as it may be stalled). When
    the connection is down or drops, it raises
    [`BrokerConnectionError`][eventcore.BrokerConnectionError] instead.

    It connects on the first `publish` (within `connect_timeout`; nats-py's own
    reconnection is off) and replaces a closed or dropped connection on the next one.
    Given `stream` and `subjects`, it creates the stream on connecting, or adds the
    subjects it lacks and sets its `duplicate_window` (see
    [`ensure_stream`][eventcore.nats.ensure_stream]).
    """

    def __init__(
        self,
        servers: str | Sequence[str] = DEFAULT_SERVERS,
        *,
        stream: str | None = None,
        subjects: str | Iterable[str] | None = None,
        duplicate_window: float = 120.0,
        publish_timeout: float = 10.0,
        connect_timeout: float = 5.0,
    ) -> None:
        if publish_timeout <= 0 or connect_timeout <= 0:
            raise ValueError("publish_timeout and connect_timeout must be positive")
        if isinstance(subjects, str):
            subjects = [subjects]
        self._subjects = None if subjects is None else tuple(subjects)
        if (stream is None) != (self._subjects is None):
            raise ValueError("give both stream and subjects (to declare the stream), or neither")
        self._servers = [servers] if isinstance(servers, str) else list(servers)
        self._stream = stream
        self._duplicate_window = duplicate_window
        self._publish_timeout = publish_timeout
        self._connect_timeout = connect_timeout
        self._link: tuple[Link, AckInbox] | None = None
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        """Whether it holds a live connection (it connects on `publish`)."""
        return self._link is not None and self._link[0].alive

    async def publish(self, messages: Sequence[Message]) -> PublishResult:
        """Publish `messages` in order; return the ones that failed, each with why."""
        if not messages:
            return {}
        link, acks = await self._ready()
        deadline = asyncio.get_running_loop().time() + self._publish_timeout
        batch = Batch(len(messages))
        try:
            async with asyncio.timeout_at(deadline):
                await self._send(link, acks, messages, batch, deadline)
                await self._await_acks(link, batch, deadline)
        except TimeoutError:
            pass
        except CONNECTION_ERRORS as error:
            await self._discard(link)
            raise self._dropped(messages, error) from error
        finally:
            acks.forget(batch)
        failures, stalled = self._failures(messages, batch.outcomes)
        if stalled:
            await self._discard(link)  # its acks are in doubt; it may be dead
            if len(failures) == len(messages):  # the broker, not the messages: none went
                unsent = sum("not even sent" in reason for reason in failures.values())
                raise BrokerConnectionError(
                    f"NATS acknowledged none of {len(messages)} message(s) within "
                    f"{self._publish_timeout} s ({unsent} not even sent: the connection "
                    "is stalled or the server is not answering)"
                )
        return failures

    async def _send(
        self,
        link: Link,
        acks: AckInbox,
        messages: Sequence[Message],
        batch: Batch,
        deadline: float,
    ) -> None:
        # nats-py swallows a cancellation that lands while it waits for its socket
        # buffer to drain, so the deadline is checked here too, not only enforced by
        # asyncio.timeout_at.
        publish = link.client.publish
        reply_to = acks.reply_to
        clock = asyncio.get_running_loop().time
        for index, message in enumerate(messages):
            headers = message.all_headers()
            headers[MSG_ID_HEADER] = headers[MessageHeaders.MESSAGE_ID]
            try:
                await publish(
                    message.topic,
                    message.payload,
                    reply=reply_to(batch, index),
                    headers=headers,
                )
            except (nats.errors.MaxPayloadError, nats.errors.BadSubjectError) as error:
                batch.fail(index, f"NATS refused to send it: {error!r}")
            if clock() >= deadline:
                return
            if index % _YIELD_EVERY == _YIELD_EVERY - 1:
                await asyncio.sleep(0)

    async def _await_acks(self, link: Link, batch: Batch, deadline: float) -> None:
        acked = asyncio.ensure_future(batch.wait())
        try:
            done, _ = await asyncio.wait(
                (acked, link.lost),
                timeout=deadline - asyncio.get_running_loop().time(),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            acked.cancel()
        if link.lost.done() and acked not in done:
            raise nats.errors.ConnectionClosedError

    def _failures(
        self, messages: Sequence[Message], outcomes: list[bool | str | None]
    ) -> tuple[PublishResult, bool]:
        """The failed messages with why, and whether some were not sent or acked in time."""
        failures: PublishResult = {}
        stalled = False
        for message, outcome in zip(messages, outcomes, strict=True):
            if outcome is ACKED:
                continue
            if outcome is None or outcome is False:
                stalled = True
                failures[message.message_id] = (
                    f"JetStream did not acknowledge it within {self._publish_timeout} s"
                    + ("" if outcome is False else " (not even sent: the connection is stalled)")
                )
            elif outcome == NO_STREAM:
                failures[message.message_id] = (
                    f"no JetStream stream captures subject {message.topic!r} (no responders): "
                    "create one that does"
                )
            else:
                failures[message.message_id] = str(outcome)
        return failures, stalled

    def _dropped(self, messages: Sequence[Message], error: BaseException) -> BrokerConnectionError:
        return BrokerConnectionError(
            f"the connection to NATS at {safe_servers(self._servers)} dropped while "
            f"publishing {len(messages)} message(s): {error!r}"
        )

    async def _ready(self) -> tuple[Link, AckInbox]:
        current = self._link
        if current is not None and current[0].alive:
            return current
        async with self._lock:
            if self._link is None or not self._link[0].alive:
                await self._discard(self._link[0] if self._link else None)
                self._link = await self._open()
            return self._link

    async def _open(self) -> tuple[Link, AckInbox]:
        link = await connect(self._servers, self._connect_timeout, timeout=self._publish_timeout)
        try:
            if self._stream is not None and self._subjects is not None:
                await ensure_stream(
                    link.jetstream,
                    self._stream,
                    self._subjects,
                    duplicate_window=self._duplicate_window,
                )
            return link, await AckInbox.open(link.client)
        except BaseException:
            await close_quietly(link.client, self._connect_timeout)
            raise

    async def _discard(self, link: Link | None) -> None:
        if link is not None and self._link is not None and link is self._link[0]:
            self._link = None
        await close_quietly(link.client if link else None, self._connect_timeout)

    async def close(self) -> None:
        """Close the connection (idempotent; a later `publish` opens a new one)."""
        await self._discard(self._link[0] if self._link else None)

    async def __aenter__(self) -> NatsPublisher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
