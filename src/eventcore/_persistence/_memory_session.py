"""`InMemorySession`: a unit of work's session on an `InMemoryEventStore`."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from eventcore._domain._metadata import LogPosition, NewEvent, RecordedEvent
from eventcore._exceptions import UnitOfWorkError
from eventcore._persistence._dead_letters import DeadLetter
from eventcore._persistence._deadlines import Deadline, encode_deadline, sealed_deadline
from eventcore._persistence._store import AppendResult, BeforeCommit, StreamAppend

if TYPE_CHECKING:
    from eventcore._persistence._memory import InMemoryEventStore

__all__ = ["InMemorySession"]


class InMemorySession:
    """Buffers a unit of work's writes; `commit` applies them with its appends at once.

    There is no transaction to roll back in memory: what `commit` applies is applied
    without an `await` in between, so no other task sees half of it.
    """

    def __init__(self, store: InMemoryEventStore) -> None:
        self._store = store
        self._done = False
        self._on_commit: list[Callable[[], None]] = []
        self._on_end: list[Callable[[], None]] = []
        self._checkpoints: dict[str, LogPosition] = {}
        # Dead letters to park (or, for None, to release) at commit.
        self._letters: dict[tuple[str, uuid.UUID], DeadLetter | None] = {}
        # Deadlines to schedule (or, for None, to cancel) at commit.
        self._deadlines: dict[uuid.UUID, Deadline | None] = {}

    async def save_checkpoint(self, name: str, position: LogPosition) -> None:
        self._checkpoints[name] = position

    async def park(
        self, projector: str, recorded: RecordedEvent, error: str, *, attempts: int = 1
    ) -> None:
        letter = DeadLetter.of(projector, recorded, error, attempts, datetime.now(UTC))
        key = (projector, recorded.event_id)
        self._letters[key] = _parked_again(self._letters.get(key), letter)

    async def release(self, projector: str, event_id: uuid.UUID) -> None:
        self._letters[(projector, event_id)] = None

    async def parked_streams(self, projector: str, stream_ids: Collection[str]) -> set[str]:
        letters = {**self._store._dead_letters, **self._letters}
        wanted = set(stream_ids)
        return {
            d.stream_id
            for (name, _), d in letters.items()
            if d is not None and name == projector and d.stream_id in wanted
        }

    async def schedule_deadline(
        self, stream_id: str, event: NewEvent, due_at: datetime, *, stream_type: str = ""
    ) -> None:
        limit = self._store._max_payload_bytes
        deadline = encode_deadline(stream_id, event, due_at, stream_type, limit)
        deadline = await sealed_deadline(self._store._cipher, deadline, event)
        self._deadlines[deadline.id] = deadline

    async def cancel_deadline(self, deadline_id: uuid.UUID) -> None:
        self._deadlines[deadline_id] = None

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        as_of: datetime | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        return await self._store.read_stream(
            stream_id,
            from_version=from_version,
            to_version=to_version,
            as_of=as_of,
            backwards=backwards,
            limit=limit,
        )

    async def commit(
        self, appends: Sequence[StreamAppend], *, before_commit: BeforeCommit | None = None
    ) -> list[AppendResult]:
        if self._done:
            raise UnitOfWorkError("this session has already been committed or rolled back")
        self._done = True
        results = await self._store.append_streams(appends)
        # In memory there is no transaction to undo: the hook runs after the append.
        if before_commit is not None and not (results and all(r.already_stored for r in results)):
            await before_commit(results)
        for apply in self._on_commit:
            apply()
        self._store._checkpoints.update(self._checkpoints)
        stored = self._store._dead_letters
        for key, letter in self._letters.items():
            if letter is None:
                stored.pop(key, None)
            else:
                stored[key] = _parked_again(stored.get(key), letter)
        for deadline_id, deadline in self._deadlines.items():
            if deadline is None:
                self._store._deadlines.pop(deadline_id, None)
            else:
                self._store._deadlines[deadline_id] = deadline
        return results

    async def rollback(self) -> None:
        self._done = True

    def on_commit(self, apply: Callable[[], None]) -> None:
        """Run `apply` when the session commits, after its appends (and its hook)."""
        self._on_commit.append(apply)

    def on_end(self, release: Callable[[], None]) -> None:
        """Run `release` when the session ends, committed or not."""
        self._on_end.append(release)

    def end(self) -> None:
        """The session is over: run its `on_end` callbacks."""
        releases, self._on_end = self._on_end, []
        for release in releases:
            release()


def _parked_again(existing: DeadLetter | None, letter: DeadLetter) -> DeadLetter:
    """`letter`, or `existing` with its attempts added and its error replaced."""
    if existing is None:
        return letter
    return replace(existing, error=letter.error, attempts=existing.attempts + letter.attempts)
