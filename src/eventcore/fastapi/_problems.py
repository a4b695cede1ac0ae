"""RFC 9457 problem details: every error answered as `application/problem+json`.

A `Problems` registry maps exception classes (by their MRO: the closest registered
base wins) to a `ProblemType`: the status, title and type URI of the answer. eventcore's
own errors come registered; applications add their domain errors in one line. A 5xx
answer never carries the error's message (it may name SQL, hosts or internals): only
its status, title and the correlation id, while the error is logged with its traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from eventcore._domain._metadata import current_context
from eventcore._exceptions import (
    AggregateNotFoundError,
    CatchUpTimeoutError,
    ConcurrencyError,
    EventcoreError,
    IdempotencyKeyError,
    IdempotencyKeyInFlightError,
    IdempotencyKeyReusedError,
    InvalidEventError,
    PreconditionFailedError,
    PreconditionRequiredError,
    StoreConnectionError,
    WrongExpectedVersionError,
)

__all__ = ["PROBLEM_JSON", "ProblemType", "Problems", "problem_response"]

PROBLEM_JSON = "application/problem+json"
"""The media type of problem details (RFC 9457)."""
TYPE_BASE = "urn:eventcore:problem:"
_log = logging.getLogger("eventcore.fastapi")


@dataclass(frozen=True, slots=True)
class ProblemType:
    """How errors of one class are answered.

    Args:
        status: the HTTP status.
        type: the problem type URI (default: `urn:eventcore:problem:<slug>` for
            eventcore's errors, `about:blank` otherwise).
        title: a short summary that does not change between occurrences (default: the
            status's reason phrase).
        detail: whether the error's message is the `detail` (never for 5xx).
        retry_after: seconds for a `Retry-After` header (503s, 409s of a key in flight).
    """

    status: int
    type: str = "about:blank"
    title: str | None = None
    detail: bool = True
    retry_after: int | None = None


def _own(status: int, slug: str, title: str, **options: Any) -> ProblemType:
    return ProblemType(status, f"{TYPE_BASE}{slug}", title, **options)


_DEFAULTS: dict[type[Exception], ProblemType] = {
    PreconditionFailedError: _own(412, "precondition-failed", "Precondition failed"),
    WrongExpectedVersionError: _own(409, "wrong-expected-version", "Version conflict"),
    ConcurrencyError: _own(409, "concurrency-conflict", "Concurrent update"),
    PreconditionRequiredError: _own(428, "precondition-required", "Precondition required"),
    AggregateNotFoundError: _own(404, "not-found", "Not found"),
    InvalidEventError: _own(422, "invalid-event", "Invalid event"),
    IdempotencyKeyError: _own(400, "idempotency-key", "Invalid idempotency key"),
    IdempotencyKeyReusedError: _own(422, "idempotency-key-reused", "Idempotency key reused"),
    IdempotencyKeyInFlightError: _own(
        409, "idempotency-key-in-flight", "Request in progress", retry_after=1
    ),
    CatchUpTimeoutError: _own(503, "not-caught-up", "Read model not caught up", retry_after=1),
    StoreConnectionError: _own(
        503, "store-unavailable", "Database unavailable", detail=False, retry_after=1
    ),
    EventcoreError: _own(500, "internal", "Internal Server Error", detail=False),
    ValidationError: _own(422, "validation", "Invalid data"),
    RequestValidationError: _own(422, "validation", "Invalid request"),
}
_INTERNAL = ProblemType(500, "about:blank", "Internal Server Error", detail=False)


class Problems:
    """The registry of how each exception class is answered (see `ProblemType`)."""

    def __init__(self, errors: Mapping[type[Exception], int | ProblemType] | None = None):
        self._types: dict[type[Exception], ProblemType] = dict(_DEFAULTS)
        for error_type, answer in (errors or {}).items():
            self.register(error_type, answer)

    def register(
        self,
        error_type: type[Exception],
        status: int | ProblemType,
        *,
        title: str | None = None,
        type: str = "about:blank",
    ) -> None:
        """Answer errors of `error_type` (and its subclasses) with `status`."""
        answer = status if isinstance(status, ProblemType) else ProblemType(status, type, title)
        self._types[error_type] = answer

    def registered(self) -> list[type[Exception]]:
        """Every exception class with an answer (for exception handlers)."""
        return list(self._types)

    def type_of(self, error: BaseException) -> ProblemType:
        """The answer to `error`: its closest registered class's."""
        for cls in type(error).__mro__:
            found = self._types.get(cls)
            if found is not None:
                return found
        return _INTERNAL

    def response(self, error: BaseException, scope: Mapping[str, Any]) -> Response:
        """The problem response to `error` raised while handling the request of `scope`."""
        if isinstance(error, HTTPException):
            return _http_exception(error, scope)
        kind = self.type_of(error)
        if kind.status >= 500:
            _log.error("%s %s failed", scope.get("method"), scope.get("path"), exc_info=error)
        extensions: dict[str, Any] = {}
        if isinstance(error, RequestValidationError | ValidationError):
            extensions["errors"] = _validation_errors(error)
        detail = str(error) if kind.detail and kind.status < 500 else None
        if isinstance(error, RequestValidationError):
            detail = "the request does not match what this endpoint accepts"
        elif isinstance(error, ValidationError):  # its message would quote the input
            detail = f"invalid {error.title}"
        headers = {"Retry-After": str(kind.retry_after)} if kind.retry_after is not None else None
        return problem_response(
            scope,
            kind.status,
            type=kind.type,
            title=kind.title,
            detail=detail,
            headers=headers,
            **extensions,
        )

    async def handle(self, request: Request, error: Exception) -> Response:
        """An exception handler (`app.add_exception_handler(cls, problems.handle)`)."""
        return self.response(error, request.scope)


def problem_response(
    scope: Mapping[str, Any],
    status: int,
    *,
    type: str = "about:blank",
    title: str | None = None,
    detail: str | None = None,
    headers: MutableMapping[str, str] | None = None,
    **extensions: Any,
) -> Response:
    """An `application/problem+json` response for the request of `scope`.

    `instance` is the request's path; the correlation id of the request (see
    `EventcoreMiddleware`) is the extension member `correlation_id`.
    """
    body: dict[str, Any] = {
        "type": type,
        "title": title or _phrase(status),
        "status": status,
    }
    if detail:
        body["detail"] = detail
    body["instance"] = scope.get("path", "")
    correlation = current_context().correlation_id
    if correlation:
        body["correlation_id"] = correlation
    body.update(extensions)
    content = json.dumps(body, separators=(",", ":"), default=str).encode()
    return Response(content, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _http_exception(error: HTTPException, scope: Mapping[str, Any]) -> Response:
    headers = dict(error.headers or {})
    if error.status_code < 200 or error.status_code in (204, 304):
        return Response(status_code=error.status_code, headers=headers)
    phrase = _phrase(error.status_code)
    detail = error.detail if isinstance(error.detail, str) and error.detail != phrase else None
    if error.status_code >= 500:
        detail = None
    return problem_response(scope, error.status_code, detail=detail, headers=headers)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _validation_errors(error: RequestValidationError | ValidationError) -> list[dict[str, Any]]:
    """Where and why, without the input values (they may be secrets)."""
    found = error.errors()
    return [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in found
    ]
