"""`EventcoreMiddleware`: the request's message context, and its commit's headers.

Pure ASGI (Starlette's `BaseHTTPMiddleware` runs the app in another task, which breaks
context variables): the request is handled inside a `message_context` whose message id
is the request id, whose correlation id comes from `X-Correlation-ID` or the trace id of
`traceparent`, and whose actor is the authenticated principal. Events recorded while
handling it carry them. The response gets `X-Correlation-ID` and `X-Request-ID` back,
and the headers of the request's commit (`ETag`, `Log-Position`).

An idempotent command's commit waits for its response: the middleware holds the
response back, stores it with the command's events, commits, and only then sends it
(or, if the commit fails, the problem instead).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eventcore._domain._metadata import message_context
from eventcore._exceptions import UnitOfWorkError

if TYPE_CHECKING:
    from eventcore.fastapi._service import Eventcore

__all__ = [
    "CORRELATION_HEADER",
    "REQUEST_HEADER",
    "EventcoreMiddleware",
    "RequestState",
    "state_of",
]

CORRELATION_HEADER = "X-Correlation-ID"
REQUEST_HEADER = "X-Request-ID"
_SCOPE_KEY = "eventcore.request"
_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_log = logging.getLogger("eventcore.fastapi")
_WANTED = frozenset({
    b"traceparent", b"x-correlation-id", b"x-request-id",
    b"if-match", b"if-none-match", b"idempotency-key",
})  # fmt: skip

Header = tuple[bytes, bytes]
Finish = Callable[[int, list[Header], bytes], Awaitable[list[Header]]]
"""An idempotent request's deferred commit: given the response, returns headers to add."""
Cleanup = Callable[[BaseException | None], Awaitable[None]]


@dataclass
class RequestState:
    """What eventcore knows about the request in flight (in its ASGI scope)."""

    service: Eventcore
    correlation_id: str
    request_id: str
    request_headers: dict[str, str] = field(default_factory=dict)
    """The request's headers eventcore reads (lower-case names; the first of each)."""
    headers: list[Header] = field(default_factory=list)
    """Headers for the response (the commit's `ETag` and `Log-Position`)."""
    finish: Finish | None = None
    cleanups: list[Cleanup] = field(default_factory=list)

    async def close(self, error: BaseException | None) -> None:
        """Run the cleanups (last registered first), whatever happens to the response."""
        cleanups, self.cleanups = self.cleanups, []
        with anyio.CancelScope(shield=True):
            for cleanup in reversed(cleanups):
                try:
                    await cleanup(error)
                except Exception:
                    _log.exception("cleaning up after a request failed")


def state_of(scope: Scope) -> RequestState:
    """The request's `RequestState`; fails clearly when the middleware is not installed."""
    state = scope.get(_SCOPE_KEY)
    if not isinstance(state, RequestState):
        raise UnitOfWorkError(
            "eventcore.fastapi's middleware is not installed: call Eventcore.install(app)"
        )
    return state


def _trace_id(traceparent: str | None) -> str | None:
    match = _TRACEPARENT.match(traceparent or "")
    return match.group(1) if match and match.group(1) != "0" * 32 else None


def _id(value: str | None) -> str | None:
    return value if value is not None and _ID.match(value) else None


class EventcoreMiddleware:
    """The pure ASGI middleware of an [`Eventcore`][eventcore.fastapi.Eventcore] service.

    [`Eventcore.install`][eventcore.fastapi.Eventcore.install] adds it. An error no
    exception handler answered becomes a 500 problem here (and is logged).
    """

    def __init__(self, app: ASGIApp, *, service: Eventcore) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one request inside its message context."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # One pass over the raw headers: Starlette's `Headers.get` scans them per name.
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name in _WANTED:
                headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        traceparent = headers.get("traceparent")
        correlation = (
            _id(headers.get("x-correlation-id")) or _trace_id(traceparent) or uuid.uuid4().hex
        )
        request_id = _id(headers.get("x-request-id")) or uuid.uuid4().hex
        state = RequestState(self.service, correlation, request_id, headers)
        scope[_SCOPE_KEY] = state
        extra: dict[str, Any] = {"traceparent": traceparent} if _trace_id(traceparent) else {}
        actor = self.service.actor_of(HTTPConnection(scope))
        with message_context(request_id, correlation_id=correlation, actor=actor, **extra):
            await self._handle(scope, receive, send, state)

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, state: RequestState
    ) -> None:
        sent = False
        held: list[Message] = []
        ids = [
            (CORRELATION_HEADER.lower().encode(), state.correlation_id.encode()),
            (REQUEST_HEADER.lower().encode(), state.request_id.encode()),
        ]

        async def forward(message: Message) -> None:
            nonlocal sent
            if message["type"] == "http.response.start":
                if state.finish is not None:
                    held.append(message)
                    return
                message["headers"] = [*message.get("headers", ()), *ids, *state.headers]
                sent = True
            elif message["type"] == "http.response.body" and held:
                held.append(message)
                if message.get("more_body", False):
                    return
                await self._finish(held, scope, state, send, ids)
                sent = True
                return
            await send(message)

        error: BaseException | None = None
        try:
            await self.app(scope, receive, forward)
        except Exception as failure:
            error = failure
            if sent:
                raise
            await self._send(self.service.problems.response(failure, scope), scope, send, ids)
        finally:
            await state.close(error)

    async def _finish(
        self, held: list[Message], scope: Scope, state: RequestState, send: Send, ids: list[Header]
    ) -> None:
        """Commit the idempotent request with its response, then send it (or the problem)."""
        start, bodies = held[0], held[1:]
        status, headers = start["status"], list(start.get("headers", ()))
        body = b"".join(m.get("body", b"") for m in bodies)
        finish, state.finish = state.finish, None
        assert finish is not None
        # The unit of work is closed and the key released before the response goes out:
        # a client's next request must find the key completed, not still in flight.
        try:
            extra = await finish(status, headers, body)
        except Exception as failure:
            await state.close(failure)
            response = self.service.problems.response(failure, scope)
            await self._send(response, scope, send, ids)
            return
        await state.close(None)
        start["headers"] = [*headers, *ids, *extra]
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _send(self, response: Any, scope: Scope, send: Send, ids: list[Header]) -> None:
        async def with_ids(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *ids]
            await send(message)

        async def nothing() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        await response(scope, nothing, with_ids)
