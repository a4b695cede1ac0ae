"""Reading Server-Sent Events: a parser, and a client on an ASGI app (httpx buffers
whole responses, so it cannot read an endless stream from an ASGI app)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.types import ASGIApp, Message

__all__ = ["SseEvent", "SseParser", "sse_on_app"]


@dataclass
class SseEvent:
    """One event of a stream (a comment is an event with only `comment`)."""

    id: str | None = None
    event: str | None = None
    data: str = ""
    retry: int | None = None
    comment: str | None = None


@dataclass
class SseParser:
    """Turns chunks of a `text/event-stream` body into events."""

    buffer: str = ""
    events: list[SseEvent] = field(default_factory=list)

    def feed(self, chunk: bytes) -> None:
        self.buffer += chunk.decode()
        while "\n\n" in self.buffer:
            block, self.buffer = self.buffer.split("\n\n", 1)
            event, data = SseEvent(), []
            for line in block.split("\n"):
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "":
                    event.comment = value
                elif name == "data":
                    data.append(value)
                elif name == "id":
                    event.id = value
                elif name == "event":
                    event.event = value
                elif name == "retry":
                    event.retry = int(value)
            event.data = "\n".join(data)
            self.events.append(event)


class AppStream:
    """An event stream read from an ASGI app."""

    def __init__(self) -> None:
        self.parser = SseParser()
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.ended = anyio.Event()
        self.started = anyio.Event()
        self._new = anyio.Event()

    def _feed(self, chunk: bytes) -> None:
        self.parser.feed(chunk)
        self._new.set()
        self._new = anyio.Event()

    async def events(self, count: int, *, timeout: float = 10.0) -> list[SseEvent]:
        """Wait for `count` data events (comments and `retry:` skipped)."""
        with anyio.fail_after(timeout):
            while len(self.data_events) < count:
                if self.ended.is_set():
                    raise AssertionError(f"the stream ended after {self.data_events}")
                await self._new.wait()
        return self.data_events[:count]

    @property
    def data_events(self) -> list[SseEvent]:
        return [e for e in self.parser.events if e.id is not None]

    @property
    def comments(self) -> list[str]:
        return [e.comment for e in self.parser.events if e.comment is not None]


@asynccontextmanager
async def sse_on_app(
    app: ASGIApp, path: str, headers: Mapping[str, str] | None = None
) -> AsyncIterator[AppStream]:
    """Open `GET path` on `app`; leaving the block disconnects the client."""
    stream = AppStream()
    disconnected = anyio.Event()
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
        "query_string": b"", "root_path": "", "server": ("test", 80), "client": ("t", 1),
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }  # fmt: skip
    sent_request = False

    async def receive() -> Message:
        nonlocal sent_request
        if not sent_request:
            sent_request = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            stream.status = message["status"]
            stream.headers = {k.decode(): v.decode() for k, v in message["headers"]}
            stream.started.set()
        elif message["type"] == "http.response.body":
            stream._feed(message.get("body", b""))
            if not message.get("more_body", False):
                stream.ended.set()
                stream._new.set()

    async def run() -> None:
        try:
            await app(scope, receive, send)
        finally:
            stream.started.set()
            stream.ended.set()
            stream._new.set()

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        try:
            with anyio.fail_after(10):
                await stream.started.wait()
            yield stream
        finally:
            disconnected.set()
            with anyio.fail_after(10):
                await stream.ended.wait()
