"""Idempotency keys: a command's result, stored with its effects, to answer retries with.

A client that may retry a command (after a timeout, a dropped connection) sends a key
with it. The first request with a key claims it inside its unit of work's transaction,
and the result is stored in that same transaction: the key's record exists exactly when
the command's effects do. A retry with the same key and the same request gets the
stored result back and has no second effect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from eventcore._exceptions import (
    IdempotencyKeyError,
    IdempotencyKeyInFlightError,
    IdempotencyKeyReusedError,
    UnitOfWorkError,
)
from eventcore._persistence._store import EventStoreSession

__all__ = [
    "IdempotencyRecord",
    "IdempotencyStore",
    "InMemoryIdempotencyStore",
    "check_key",
    "replay_of",
]

MAX_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """A completed idempotent command: its key, what the request was, and its result.

    `scope` separates the keys of different clients (the actor, say: "" for none);
    `fingerprint` identifies the request (a hash of what it asked for), so a key sent
    again with another request is recognised. `status`, `headers` and `body` are the
    result to replay (for HTTP: the response).
    """

    scope: str
    key: str
    fingerprint: str
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    created_at: datetime
    expires_at: datetime


@runtime_checkable
class IdempotencyStore(Protocol):
    """Where idempotent commands keep their keys and results, with a retention.

    Every event store that keeps them has one as `store.idempotency`
    (`SqlAlchemyEventStore`, `InMemoryEventStore`).
    """

    async def claim(
        self, session: EventStoreSession, scope: str, key: str, fingerprint: str
    ) -> IdempotencyRecord | None:
        """Claim `key` for the command running in `session`, until the session ends.

        Returns the stored record when the key was completed before with this
        `fingerprint` (replay its result: run nothing). Raises
        [`IdempotencyKeyReusedError`][eventcore.IdempotencyKeyReusedError] when it was
        completed for another request, and
        [`IdempotencyKeyInFlightError`][eventcore.IdempotencyKeyInFlightError] when
        another open transaction holds it. Returns `None` for a new key: run the
        command, then [`complete`][eventcore.IdempotencyStore.complete] it in `session`.
        Records past their `expires_at` count as absent.
        """
        ...

    async def complete(self, session: EventStoreSession, record: IdempotencyRecord) -> None:
        """Store `record` in `session`'s transaction: it commits with the command's effects."""
        ...

    async def find(self, scope: str, key: str) -> IdempotencyRecord | None:
        """The stored record of `key` in `scope`, if there is one that has not expired."""
        ...

    async def delete_expired(self, *, now: datetime | None = None, limit: int = 10_000) -> int:
        """Delete up to `limit` records that expired before `now` (default: now); how many."""
        ...


def check_key(key: str) -> str:
    """`key` if it can be stored: 1 to 255 visible ASCII characters."""
    if not 0 < len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise IdempotencyKeyError(
            f"an idempotency key must be 1 to {MAX_KEY_LENGTH} visible ASCII characters, "
            f"not {key[:300]!r}"
        )
    return key


def replay_of(
    record: IdempotencyRecord | None, key: str, fingerprint: str
) -> IdempotencyRecord | None:
    """The record to replay for a request with `fingerprint`, or `None` if there is none."""
    if record is None:
        return None
    if record.fingerprint != fingerprint:
        raise IdempotencyKeyReusedError(key)
    return record


class _Hooks(Protocol):
    def on_commit(self, apply: Callable[[], None]) -> None: ...

    def on_end(self, release: Callable[[], None]) -> None: ...


class InMemoryIdempotencyStore:
    """An [`IdempotencyStore`][eventcore.IdempotencyStore] in a dict, for an `InMemoryEventStore`.

    A claim holds the key until the session ends; a completed record is stored when
    the session commits, with its appends.
    """

    def __init__(self) -> None:
        self._records: dict[tuple[str, str], IdempotencyRecord] = {}
        self._held: set[tuple[str, str]] = set()

    async def claim(
        self, session: EventStoreSession, scope: str, key: str, fingerprint: str
    ) -> IdempotencyRecord | None:
        """Claim `key` until `session` ends (see `IdempotencyStore.claim`)."""
        hooks = _hooks(session)
        found = replay_of(await self.find(scope, check_key(key)), key, fingerprint)
        if found is not None:
            return found
        if (scope, key) in self._held:
            raise IdempotencyKeyInFlightError(key)
        self._held.add((scope, key))
        hooks.on_end(lambda: self._held.discard((scope, key)))
        return None

    async def complete(self, session: EventStoreSession, record: IdempotencyRecord) -> None:
        """Store `record` when `session` commits."""

        def store() -> None:
            self._records[(record.scope, record.key)] = record

        _hooks(session).on_commit(store)

    async def find(self, scope: str, key: str) -> IdempotencyRecord | None:
        """The stored record of `key` in `scope`, unless it has expired."""
        record = self._records.get((scope, key))
        if record is None or record.expires_at <= datetime.now(UTC):
            return None
        return record

    async def delete_expired(self, *, now: datetime | None = None, limit: int = 10_000) -> int:
        """Delete up to `limit` records that expired before `now`."""
        moment = now or datetime.now(UTC)
        expired: Sequence[tuple[str, str]] = [
            k for k, r in self._records.items() if r.expires_at <= moment
        ][:limit]
        for k in expired:
            del self._records[k]
        return len(expired)


def _hooks(session: EventStoreSession) -> _Hooks:
    if not (hasattr(session, "on_commit") and hasattr(session, "on_end")):
        raise UnitOfWorkError(f"{type(session).__name__} is not a session of an InMemoryEventStore")
    hooks: _Hooks = session  # type: ignore[assignment]
    return hooks
