"""Parking events a projector keeps failing on, and replaying or discarding them later."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from eventcore._application._projector import ProjectionContext, Projector
from eventcore._domain._metadata import RecordedEvent
from eventcore._exceptions import ProjectionError
from eventcore._persistence._dead_letters import DeadLetter
from eventcore._persistence._store import EventStore, EventStoreSession

__all__ = ["Parking", "describe", "discard_dead_letters", "replay_dead_letters"]

_log = logging.getLogger("eventcore.projections")
_MAX_ERROR_CHARS = 2000


def describe(error: BaseException) -> str:
    """The error text stored with a dead letter (its `repr`, shortened if very long)."""
    text = repr(error)
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 3] + "..."


@dataclass
class Parking:
    """Which events of one batch a projector parks instead of handling, in one session.

    `poisoned` maps the ids of events that failed every retry to their error text.
    An ordered projector also parks, unrun, every event of a stream that has a parked
    event (already stored, or parked earlier in this batch).
    """

    projector: Projector
    session: EventStoreSession
    poisoned: Mapping[uuid.UUID, str]
    attempts: int
    """How many times each poisoned event failed."""
    streams: set[str] = field(default_factory=set)

    @classmethod
    async def start(
        cls,
        projector: Projector,
        session: EventStoreSession,
        batch: list[RecordedEvent],
        poisoned: Mapping[uuid.UUID, str],
        attempts: int,
    ) -> Parking:
        """Look up the batch's streams that already have parked events (if it matters)."""
        parking = cls(projector, session, poisoned, attempts)
        if projector.on_failure == "park" and projector.ordered:
            stream_ids = {r.stream_id for r in batch}
            parking.streams = await session.parked_streams(projector.key, stream_ids)
        return parking

    async def parked(self, recorded: RecordedEvent) -> bool:
        """Park `recorded` if it must not be handled now; say whether it was."""
        if not self.poisoned and not self.streams:
            return False  # the common case: nothing to park
        error = self.poisoned.get(recorded.event_id)
        attempts = self.attempts
        if error is None and recorded.stream_id in self.streams:
            error = f"not run: an earlier event of stream {recorded.stream_id!r} is parked"
            attempts = 0
        if error is None:
            return False
        await self.session.park(self.projector.key, recorded, error, attempts=attempts)
        if self.projector.ordered:
            self.streams.add(recorded.stream_id)
        return True


async def replay_dead_letters(
    store: EventStore, projector: Projector, *, stream_id: str | None = None
) -> int:
    """Run `projector` again on its parked events; return how many succeeded.

    Streams are replayed in the order of their first parked event, each in version
    order, one event per transaction: the handler's writes and the deletion of the dead
    letter commit together. An event that fails again stays parked (its attempts
    counted, its error updated); for an ordered projector the rest of its stream then
    waits too. Events parked meanwhile behind replayed ones are replayed as well.
    """
    replayed = 0
    tried: set[uuid.UUID] = set()
    blocked: set[str] = set()  # streams of an ordered projector with a failed replay
    while True:
        letters = [
            d
            for d in await store.list_dead_letters(projector.key)
            if d.event_id not in tried
            and d.stream_id not in blocked
            and stream_id in (None, d.stream_id)
        ]
        if not letters:
            return replayed
        for stream, parked in _by_stream(letters).items():
            for letter, recorded in zip(parked, await _reread(store, stream, parked), strict=True):
                tried.add(letter.event_id)
                if await _replay_one(store, projector, recorded):
                    replayed += 1
                elif projector.ordered:
                    blocked.add(stream)
                    break


async def discard_dead_letters(
    store: EventStore,
    projector: str,
    *,
    stream_id: str | None = None,
    event_ids: Collection[uuid.UUID] | None = None,
) -> int:
    """Delete `projector`'s dead letters (of one stream, or some events) unreplayed.

    Returns how many were discarded. The events stay skipped by the projection; the
    later events of their streams are handled normally again.
    """
    letters = [
        d
        for d in await store.list_dead_letters(projector)
        if stream_id in (None, d.stream_id) and (event_ids is None or d.event_id in event_ids)
    ]
    if letters:
        async with store.session() as session:
            for letter in letters:
                await session.release(projector, letter.event_id)
            await session.commit([])
    return len(letters)


def _by_stream(letters: list[DeadLetter]) -> dict[str, list[DeadLetter]]:
    """Letters grouped by stream (in order of each stream's first letter), by version."""
    streams: dict[str, list[DeadLetter]] = {}
    for letter in letters:
        streams.setdefault(letter.stream_id, []).append(letter)
    return {s: sorted(parked, key=lambda d: d.version) for s, parked in streams.items()}


async def _reread(
    store: EventStore, stream_id: str, parked: list[DeadLetter]
) -> list[RecordedEvent]:
    """The parked events of one stream, as stored (upcast), with their log positions."""
    found = await store.read_stream(
        stream_id, from_version=parked[0].version, to_version=parked[-1].version
    )
    by_id = {r.event_id: r for r in found}
    events = []
    for letter in parked:
        recorded = by_id.get(letter.event_id)
        if recorded is None:
            raise ProjectionError(
                f"parked event {letter.event_id} is not at version {letter.version} of "
                f"stream {stream_id!r}"
            )
        events.append(_at(recorded, letter.transaction_id))
    return events


def _at(recorded: RecordedEvent, transaction_id: int) -> RecordedEvent:
    """`recorded` with the transaction id that stream reads leave out."""
    return RecordedEvent(
        recorded.event,
        recorded.event_id,
        recorded.stream_id,
        recorded.stream_type,
        recorded.version,
        recorded.global_position,
        recorded.recorded_at,
        recorded.event_type,
        recorded.schema_version,
        recorded.metadata,
        transaction_id,
    )


async def _replay_one(store: EventStore, projector: Projector, recorded: RecordedEvent) -> bool:
    """Handle one parked event and release it, atomically; on failure, count it."""
    async with store.session() as session:
        try:
            await projector.project(recorded, ProjectionContext(recorded, session))
        except Exception as error:
            failure = error
        else:
            await session.release(projector.key, recorded.event_id)
            await session.commit([])
            return True
    # The failed attempt's transaction is rolled back; the count goes in a new one.
    _log.warning(
        "projector %s failed again on parked event %s: %r",
        projector.key,
        recorded.event_id,
        failure,
    )
    async with store.session() as session:
        await session.park(projector.key, recorded, describe(failure), attempts=1)
        await session.commit([])
    return False
