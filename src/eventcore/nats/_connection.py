"""Connecting to NATS without nats-py's endless reconnects, and declaring streams."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import replace
from urllib.parse import urlsplit, urlunsplit

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamConfig, StreamInfo

from eventcore import BrokerConnectionError, PublishError

__all__ = [
    "CONNECTION_ERRORS",
    "DEFAULT_SERVERS",
    "Link",
    "close_quietly",
    "connect",
    "ensure_stream",
    "safe_servers",
]

DEFAULT_SERVERS = "nats://127.0.0.1:4222"

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionDrainingError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
    nats.errors.NoServersError,
    OSError,
)
"""What nats-py raises when the connection is closed, dropped or unusable."""

# The server is pinged this often, and the connection given up after this many
# unanswered pings: a silently dead connection is noticed in about 30 s, not minutes.
_PING_INTERVAL = 10
_MAX_OUTSTANDING_PINGS = 3

_log = logging.getLogger("eventcore.nats")


def safe_servers(servers: Sequence[str]) -> str:
    """The server URLs without their passwords, for messages."""
    shown = []
    for url in servers:
        parts = urlsplit(url)
        if parts.password is not None:
            netloc = f"{parts.username}:***@{parts.hostname}"
            if parts.port is not None:
                netloc += f":{parts.port}"
            url = urlunsplit(parts._replace(netloc=netloc))
        shown.append(url)
    return ", ".join(shown)


class Link:
    """One NATS connection with its JetStream context; `lost` is done once it closed
    or dropped (nats-py does not reconnect it)."""

    __slots__ = ("client", "jetstream", "lost")

    def __init__(self, client: Client, lost: asyncio.Future[None], timeout: float) -> None:
        self.client = client
        self.lost = lost
        self.jetstream: JetStreamContext = client.jetstream(timeout=timeout)

    @property
    def alive(self) -> bool:
        """Whether it is connected and has not dropped."""
        return not self.lost.done() and self.client.is_connected


async def _log_error(error: Exception) -> None:
    # nats-py's default callback logs each failure with a traceback at ERROR; the
    # adapters raise BrokerConnectionError instead.
    _log.debug("NATS client error: %r", error)


async def connect(servers: Sequence[str], connect_timeout: float, *, timeout: float) -> Link:
    """Connect to one of `servers` within `connect_timeout` seconds (each tried twice),
    with reconnection off: a dropped connection is closed, and replaced by its owner.
    `timeout` bounds JetStream API calls. Raises `BrokerConnectionError`."""
    lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def on_lost() -> None:
        if not lost.done():
            lost.set_result(None)

    client = Client()
    try:
        async with asyncio.timeout(connect_timeout):
            await client.connect(
                list(servers),
                connect_timeout=max(1, math.ceil(connect_timeout)),
                allow_reconnect=False,
                max_reconnect_attempts=1,  # per server; 0 would mean "forever"
                reconnect_time_wait=0,
                ping_interval=_PING_INTERVAL,
                max_outstanding_pings=_MAX_OUTSTANDING_PINGS,
                error_cb=_log_error,
                disconnected_cb=on_lost,
                closed_cb=on_lost,
            )
    except BaseException as error:
        await close_quietly(client, connect_timeout)
        if isinstance(error, TimeoutError | nats.errors.Error | OSError):
            raise BrokerConnectionError(
                f"cannot connect to NATS at {safe_servers(servers)} within "
                f"{connect_timeout} s: {error!r}"
            ) from error
        raise
    return Link(client, lost, timeout)


async def close_quietly(client: Client | None, timeout: float) -> None:
    """Close `client`, ignoring errors (it may be dead already), within `timeout`."""
    if client is None or client.is_closed:
        return
    with contextlib.suppress(Exception):
        async with asyncio.timeout(timeout):
            await client.close()


async def ensure_stream(
    js: JetStreamContext,
    name: str,
    subjects: str | Iterable[str],
    *,
    duplicate_window: float = 120.0,
) -> StreamInfo:
    """Create the JetStream stream `name` capturing `subjects` (wildcards allowed), or
    update it.

    An existing stream keeps its subjects and settings; the `subjects` it lacks are
    added, and its `duplicate_window` (seconds in which JetStream drops a message whose
    `Nats-Msg-Id` it stored already) is set. Returns the stream's info.

    Raises [`PublishError`][eventcore.PublishError] if JetStream refuses (for example,
    another stream captures one of the subjects), and
    [`BrokerConnectionError`][eventcore.BrokerConnectionError] if it does not answer.
    """
    wanted = list(dict.fromkeys([subjects] if isinstance(subjects, str) else subjects))
    try:
        try:
            info = await js.stream_info(name)
        except nats.js.errors.NotFoundError:
            config = StreamConfig(name=name, subjects=wanted, duplicate_window=duplicate_window)
            return await js.add_stream(config)
        have = list(info.config.subjects or [])
        missing = [subject for subject in wanted if subject not in have]
        if not missing and info.config.duplicate_window == duplicate_window:
            return info
        config = replace(info.config, subjects=[*have, *missing], duplicate_window=duplicate_window)
        return await js.update_stream(config)
    except nats.js.errors.APIError as error:
        raise PublishError(
            f"cannot create or update JetStream stream {name!r} for subjects {wanted}: {error}"
        ) from error
    except (nats.errors.Error, OSError) as error:
        raise BrokerConnectionError(
            f"JetStream did not answer about stream {name!r} (is JetStream enabled?): {error!r}"
        ) from error
