"""Server-Sent Events: the global log (or what a projection has applied of it), live.

Each event goes out with `id:` its global position, so a client that reconnects
(browsers' `EventSource` do so by themselves) sends it back as `Last-Event-ID` and
resumes right after it. A comment is sent every `keep_alive` seconds while nothing
happens, so proxies keep the connection open. The stream ends at once when the service
drains (the server was told to stop), with a `retry:` hint: clients reconnect to
another instance instead of holding this one's shutdown hostage.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from eventcore._application._projection_status import readable, wait_for_projection
from eventcore._application._projector import Projector
from eventcore._application._subscription import Subscription
from eventcore._domain._metadata import LogPosition, RecordedEvent
from eventcore._exceptions import CatchUpTimeoutError
from eventcore.fastapi._middleware import state_of
from fastapi import HTTPException, Request

if TYPE_CHECKING:
    from eventcore.fastapi._service import Eventcore

__all__ = ["EventStreamResponse", "event_json", "event_stream"]

Render = Callable[[RecordedEvent], object]


def event_json(recorded: RecordedEvent) -> dict[str, Any]:
    """The default `data:` of an event: its type, stream, version, position and payload."""
    return {
        "type": recorded.event_type,
        "stream_id": recorded.stream_id,
        "version": recorded.version,
        "position": recorded.global_position,
        "recorded_at": recorded.recorded_at.isoformat(),
        "data": recorded.event.model_dump(mode="json"),
    }


async def event_stream(
    request: Request,
    *,
    event_types: Collection[str] | None = None,
    stream_types: Collection[str] | None = None,
    where: Callable[[RecordedEvent], bool] | None = None,
    projection: Projector | type[Projector] | str | None = None,
    render: Render = event_json,
    from_start: bool = False,
    keep_alive: float = 15.0,
    retry: float = 2.0,
) -> EventStreamResponse:
    """A Server-Sent Events response that streams the log's events as they are committed.

    Args:
        request: the request (its `Last-Event-ID` says where to resume).
        event_types: only these stored event types (default: all, or the projection's).
        stream_types: only events of these stream (aggregate) types.
        where: only events it returns true for.
        projection: send each event only once this projection (a projector, its class,
            or the name of one the service runs) has applied it: "the read model now
            shows this", for clients that then re-read it.
        render: the `data:` of an event (made JSON); default `event_json`.
        from_start: without `Last-Event-ID`, start at the beginning of the log rather
            than at its end.
        keep_alive: seconds between keep-alive comments on a quiet stream.
        retry: the reconnection delay suggested to clients (seconds).

    ```python
    @router.get("/sections/{section_id}/events")
    async def section_events(section_id: str, request: Request) -> EventStreamResponse:
        return await event_stream(request, where=lambda e: e.stream_id == section_id)
    ```
    """
    service = state_of(request.scope).service
    projector = service.projector(projection) if projection is not None else None
    if projector is not None and event_types is None:
        event_types = projector.event_types()
    start = await _start(service, request, from_start)
    subscription = Subscription(
        service.store,
        after=start,
        event_types=event_types,
        stream_types=stream_types,
        max_wait=min(1.0, keep_alive),
    )
    return EventStreamResponse(
        service, subscription, where, projector, render, keep_alive=keep_alive, retry=retry
    )


async def _start(service: Eventcore, request: Request, from_start: bool) -> LogPosition:
    last = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    store = service.store
    if last is not None:
        if not last.isdigit():
            raise HTTPException(400, f"Last-Event-ID {last[:40]!r} is not a log position")
        found = await store.log_position_of(int(last))
        if found is None:
            raise HTTPException(400, f"Last-Event-ID {last} is not a position of this log")
        return found
    head = 0 if from_start else await store.log_head()
    return await readable(store, head) if head else LogPosition()


class EventStreamResponse(Response):
    """A `text/event-stream` response fed by a subscription (see `event_stream`)."""

    media_type = "text/event-stream"

    def __init__(
        self,
        service: Eventcore,
        subscription: Subscription,
        where: Callable[[RecordedEvent], bool] | None,
        projector: Projector | type[Projector] | None,
        render: Render,
        *,
        keep_alive: float,
        retry: float,
    ) -> None:
        # Not Response.__init__: it would add `content-length: 0`.
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        self._service = service
        self._subscription = subscription
        self._where = where
        self._projector = projector
        self._render = render
        self._keep_alive = keep_alive
        self._retry = retry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Stream until the client leaves or the service drains."""
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        try:
            await self._body(f"retry: {int(self._retry * 1000)}\n\n".encode(), send)
            async with anyio.create_task_group() as group:
                group.start_soon(self._stop_when_drained, group.cancel_scope)
                group.start_soon(self._stop_on_disconnect, receive, group.cancel_scope)
                await self._pump(send)
                group.cancel_scope.cancel()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:  # the client went away (ASGI 2.4 servers raise it from send)
            return

    async def _stop_when_drained(self, scope: anyio.CancelScope) -> None:
        await self._service.wait_drained()
        scope.cancel()

    async def _stop_on_disconnect(self, receive: Receive, scope: anyio.CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        scope.cancel()

    async def _body(self, chunk: bytes, send: Send) -> None:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})

    async def _pump(self, send: Send) -> None:
        async with self._subscription as subscription:
            quiet_since = anyio.current_time()
            while True:
                batch = await subscription.read()
                if batch:
                    if self._projector is not None:
                        await self._applied(batch[-1].log_position, send)
                    chunk = b"".join(self._format(e) for e in batch if self._wanted(e))
                    if chunk:
                        await self._body(chunk, send)
                        quiet_since = anyio.current_time()
                    continue
                if anyio.current_time() - quiet_since >= self._keep_alive:
                    await self._body(b": keep-alive\n\n", send)
                    quiet_since = anyio.current_time()
                await subscription.idle()

    async def _applied(self, position: LogPosition, send: Send) -> None:
        """Wait until the projection has applied the log up to `position`."""
        assert self._projector is not None
        while True:
            try:
                await wait_for_projection(
                    self._service.store, self._projector, position, timeout=self._keep_alive
                )
                return
            except CatchUpTimeoutError:
                await self._body(b": keep-alive\n\n", send)

    def _wanted(self, recorded: RecordedEvent) -> bool:
        return self._where is None or self._where(recorded)

    def _format(self, recorded: RecordedEvent) -> bytes:
        data = self._render(recorded)
        text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
        lines = "".join(f"data: {line}\n" for line in text.split("\n"))
        return f"id: {recorded.global_position}\nevent: {recorded.event_type}\n{lines}\n".encode()
