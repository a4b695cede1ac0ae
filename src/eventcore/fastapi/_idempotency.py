"""Idempotent commands over HTTP (the IETF httpapi `Idempotency-Key` draft).

The first request with a key claims it inside its unit of work's transaction; the
response is stored in that same transaction when the command commits (it waits for the
response: see `EventcoreMiddleware`). Then:

- the same key with the same request (method, path, body) replays the stored response,
  with `Idempotent-Replayed: true`, and runs nothing;
- the same key with another request is 422;
- the same key while its first request is still running is 409 (with `Retry-After`);
- a required key that is missing (or malformed) is 400.

A request that fails commits nothing, its key included: it may be retried with it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response

from eventcore._exceptions import EventcoreError
from eventcore._persistence._idempotency import IdempotencyRecord, IdempotencyStore
from eventcore._persistence._store import AppendResult
from eventcore.fastapi._middleware import Finish, Header
from eventcore.fastapi._unit_of_work import RequestUnitOfWork, commit_headers

__all__ = [
    "IDEMPOTENCY_HEADER",
    "REPLAYED_HEADER",
    "Replay",
    "deferred_commit",
    "fingerprint",
    "replay_response",
]

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# Not stored: they describe the connection or this one response, not the result.
_NOT_STORED = {b"date", b"server", b"content-length", b"connection", b"set-cookie",
               b"x-request-id", b"x-correlation-id", b"transfer-encoding"}  # fmt: skip


class Replay(EventcoreError):
    """Raised by the unit of work dependency to answer with a stored response."""

    def __init__(self, record: IdempotencyRecord) -> None:
        super().__init__(f"replaying the response to idempotency key {record.key!r}")
        self.record = record


async def fingerprint(request: Request) -> str:
    """What identifies a request for its key: method, path, query, media type and body."""
    digest = hashlib.sha256()
    for part in (request.method, request.url.path, request.url.query):
        digest.update(part.encode() + b"\0")
    digest.update(request.headers.get("content-type", "").encode() + b"\0")
    digest.update(await request.body())
    return digest.hexdigest()


def replay_response(record: IdempotencyRecord) -> Response:
    """The stored response, marked as replayed."""
    response = Response(record.body, status_code=record.status)
    response.raw_headers = [
        *((name.encode("latin-1"), value.encode("latin-1")) for name, value in record.headers),
        (REPLAYED_HEADER.lower().encode(), b"true"),
    ]
    return response


def deferred_commit(
    uow: RequestUnitOfWork,
    keys: IdempotencyStore,
    scope: str,
    key: str,
    print_: str,
    retention: timedelta,
) -> Finish:
    """The commit of an idempotent request, run once its response is known."""

    async def finish(status: int, headers: list[Header], body: bytes) -> list[Header]:
        extra: list[Header] = []
        session = uow.session  # the hook runs while committing, when uow.session is closed

        async def store(results: list[AppendResult]) -> None:
            extra.extend(commit_headers(uow, results))
            now = datetime.now(UTC)
            record = IdempotencyRecord(
                scope, key, print_, status, _kept([*headers, *extra]), body, now, now + retention
            )
            await keys.complete(session, record)

        uow.before_commit(store)
        await uow.commit_now()
        return extra

    return finish


def _kept(headers: Sequence[Header]) -> tuple[tuple[str, str], ...]:
    return tuple(
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in headers
        if name.lower() not in _NOT_STORED
    )
