"""`InMemoryEventStore`: the reference implementation, for tests and prototypes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Collection, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from eventcore._domain._events import EventRegistry, default_registry
from eventcore._domain._metadata import LogPosition, NewEvent, RecordedEvent
from eventcore._exceptions import InvalidEventError
from eventcore._persistence._codec import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    EncodedEvent,
    PreparedAppend,
    check_log_read,
    check_read_range,
    decode_row,
    encode_appends,
    utc_or_none,
    validate_stream_id,
)
from eventcore._persistence._data_keys import InMemoryDataKeyStore
from eventcore._persistence._dead_letters import DeadLetter
from eventcore._persistence._deadlines import (
    Deadline,
    deadline_appends,
    due_now,
)
from eventcore._persistence._idempotency import InMemoryIdempotencyStore
from eventcore._persistence._key_providers import KeyProvider
from eventcore._persistence._memory_session import InMemorySession
from eventcore._persistence._personal_data import PersonalDataKeys
from eventcore._persistence._projection_versions import check_activation
from eventcore._persistence._protection import Protection
from eventcore._persistence._sealed_snapshots import key_ids_in
from eventcore._persistence._signal import AppendSignal
from eventcore._persistence._snapshots import InMemorySnapshotStore, SnapshotStore
from eventcore._persistence._store import (
    AppendResult,
    EventStoreSession,
    ExpectedVersion,
    StreamAppend,
)
from eventcore._persistence._versioning import (
    check_all_or_none_stored,
    check_already_stored,
    check_expected_version,
)

__all__ = ["InMemoryEventStore"]


@dataclass(frozen=True, slots=True)
class _Row:
    position: int
    stream_id: str
    stream_type: str
    version: int
    recorded_at: datetime
    encoded: EncodedEvent


class InMemoryEventStore:
    """An [`EventStore`][eventcore.EventStore] held in memory by one process.

    It behaves like the database stores (payloads go through JSON, upcasters run on
    read, the same errors) so tests written against it hold for them too.

    With a `key_provider`, personal data is encrypted as on the database stores (the
    data keys are kept in memory): see `personal_data`.
    """

    def __init__(
        self,
        *,
        registry: EventRegistry | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        key_provider: KeyProvider | None = None,
        key_cache_seconds: float = 60.0,
    ) -> None:
        self._registry = registry or default_registry
        self._max_payload_bytes = max_payload_bytes
        self._log: list[_Row] = []
        self._streams: dict[str, list[_Row]] = {}
        self._by_id: dict[uuid.UUID, _Row] = {}
        self._snapshots = InMemorySnapshotStore()
        self._signal = AppendSignal()
        self._checkpoints: dict[str, LogPosition] = {}
        self._dead_letters: dict[tuple[str, uuid.UUID], DeadLetter] = {}
        self._deadlines: dict[uuid.UUID, Deadline] = {}
        self._active_versions: dict[str, int] = {}
        protection = Protection.of(
            key_provider,
            data_keys=InMemoryDataKeyStore,
            cache_seconds=key_cache_seconds,
            session=self.session,
            registry=self._registry,
            snapshots=self._snapshots,
            stream_key_ids=self._stream_key_ids,
        )
        self._protection = protection
        self._personal, self._cipher = protection.keys, protection.cipher
        self._idempotency = InMemoryIdempotencyStore()

    @property
    def snapshots(self) -> SnapshotStore:
        """The snapshot store that goes with this event store."""
        return self._protection.snapshots

    @property
    def personal_data(self) -> PersonalDataKeys:
        """Forget data subjects, inspect and rotate their keys (needs a `key_provider`)."""
        return self._protection.required()

    async def _stream_key_ids(self, stream_id: str, after: int, upto: int) -> set[str]:
        rows = self._streams.get(stream_id, [])[after:upto]
        return key_ids_in(r.encoded.data for r in rows)

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        *,
        expected_version: int | ExpectedVersion = ExpectedVersion.ANY,
        stream_type: str = "",
    ) -> AppendResult:
        """Append `events` to one stream atomically (see `EventStore.append`)."""
        append = StreamAppend(stream_id, events, expected_version, stream_type)
        return (await self.append_streams([append]))[0]

    async def append_streams(self, appends: Sequence[StreamAppend]) -> list[AppendResult]:
        """Append to several streams atomically: all or none."""
        prepared = encode_appends(appends, self._max_payload_bytes)
        return self._append_prepared(await self._cipher.protect_appends(appends, prepared))

    def _append_prepared(self, prepared: list[PreparedAppend]) -> list[AppendResult]:
        # No await between the checks and the writes: atomic under asyncio.
        plans = [self._plan(p.stream_id, p.expected_version, p.events) for p in prepared]
        check_all_or_none_stored(plans)
        now = datetime.now(UTC)
        results = []
        for append, stored in zip(prepared, plans, strict=True):
            if stored is not None:
                results.append(stored)
                continue
            stream_id = append.stream_id
            rows = [self._write(stream_id, append.stream_type, now, e) for e in append.events]
            version = self._version(stream_id)
            results.append(AppendResult(stream_id, version, tuple(r.position for r in rows)))
        if not all(r.already_stored for r in results):
            self._signal.notify()
        return results

    @asynccontextmanager
    async def watch(self) -> AsyncIterator[AppendSignal]:
        """Be woken when events are appended, while the block is open."""
        yield self._signal

    def _plan(
        self, stream_id: str, expected: int | ExpectedVersion, events: list[EncodedEvent]
    ) -> AppendResult | None:
        """Check one stream's append; return its result if it is stored already."""
        found = [self._by_id[e.event_id] for e in events if e.event_id in self._by_id]
        existing = [(r.encoded.event_id, r.stream_id, r.position) for r in found]
        ids = [e.event_id for e in events]
        stored = check_already_stored(stream_id, ids, existing, self._version(stream_id))
        if stored is not None:
            return stored
        check_expected_version(stream_id, expected, self._version(stream_id))
        return None

    def _write(self, stream_id: str, stream_type: str, now: datetime, event: EncodedEvent) -> _Row:
        stream = self._streams.setdefault(stream_id, [])
        row = _Row(len(self._log) + 1, stream_id, stream_type, len(stream) + 1, now, event)
        stream.append(row)
        self._log.append(row)
        self._by_id[event.event_id] = row
        return row

    def _version(self, stream_id: str) -> int:
        return len(self._streams.get(stream_id, ()))

    async def log_head(self) -> int:
        """The highest global position so far (0 for an empty log)."""
        return len(self._log)

    async def log_position_of(self, global_position: int) -> LogPosition | None:
        """The log position of the event at `global_position`, if there is one."""
        return LogPosition(0, global_position) if 0 < global_position <= len(self._log) else None

    async def load_checkpoints(self, names: list[str] | None = None) -> dict[str, LogPosition]:
        """The checkpoints of the named subscribers (all of them when `None`)."""
        if names is None:
            return dict(self._checkpoints)
        return {name: self._checkpoints[name] for name in names if name in self._checkpoints}

    async def delete_checkpoint(self, name: str) -> None:
        """Forget subscriber `name`'s checkpoint."""
        self._checkpoints.pop(name, None)

    async def active_projection_versions(self) -> dict[str, int]:
        """The active version of each projection whose version was ever switched."""
        return dict(self._active_versions)

    async def activate_projection(self, name: str, version: int) -> None:
        """Make `version` of projection `name` the one that serves readers."""
        check_activation(name, version)
        self._active_versions[name] = version

    async def fire_deadlines(self, *, now: datetime | None = None, limit: int = 100) -> int:
        """Append the events of the deadlines due at `now`; return how many fired."""
        moment = due_now(now, limit)
        due = [d for d in self._deadlines.values() if d.due_at <= moment]
        due = sorted(due, key=lambda d: (d.due_at, d.id))[:limit]
        if due:
            self._append_prepared(deadline_appends(due))
            for deadline in due:
                del self._deadlines[deadline.id]
        return len(due)

    async def list_deadlines(self, stream_id: str | None = None) -> list[Deadline]:
        """The scheduled deadlines (of one stream, if given), the earliest first."""
        found = [d for d in self._deadlines.values() if stream_id in (None, d.stream_id)]
        return sorted(found, key=lambda d: (d.due_at, d.id))

    async def list_dead_letters(self, projector: str | None = None) -> list[DeadLetter]:
        """The events parked for `projector` (all projectors when `None`), in log order."""
        letters = self._dead_letters.values()
        found = [d for d in letters if projector is None or d.projector == projector]
        return sorted(found, key=lambda d: (d.log_position, d.projector))

    async def stream_version(self, stream_id: str) -> int:
        """Return the stream's current version (0 when it does not exist)."""
        return self._version(validate_stream_id(stream_id))

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
        """Read events of one stream (see `EventStore.read_stream`)."""
        check_read_range(from_version, to_version, limit)
        as_of = utc_or_none(as_of)
        rows = self._streams.get(validate_stream_id(stream_id), [])
        selected = [
            row
            for row in rows[max(from_version, 1) - 1 : to_version]
            if as_of is None or row.recorded_at <= as_of
        ]
        if backwards:
            selected.reverse()
        if limit is not None:
            selected = selected[:limit]
        return await self._decode_rows(selected)

    async def read_all(
        self,
        *,
        after: int = 0,
        batch_size: int = 500,
        event_types: Collection[str] | None = None,
        stream_types: Collection[str] | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        """Iterate over the global log after position `after` (see `EventStore.read_all`)."""
        if batch_size < 1:
            raise InvalidEventError(f"batch_size must be >= 1, not {batch_size}")
        for row in self._rows_after(after):
            if event_types is not None and row.encoded.event_type not in event_types:
                continue
            if stream_types is not None and row.stream_type not in stream_types:
                continue
            yield (await self._decode_rows([row]))[0]

    async def read_log(
        self,
        after: LogPosition = LogPosition(),
        *,
        limit: int = 500,
        event_types: Collection[str] | None = None,
        stream_types: Collection[str] | None = None,
    ) -> list[RecordedEvent]:
        """Read the next events in commit order (see `EventStore.read_log`).

        Appends here are atomic and immediate, so position order is commit order.
        """
        check_log_read(after, limit)
        found: list[_Row] = []
        for row in self._rows_after(after.global_position):
            if len(found) == limit:
                break
            if event_types is not None and row.encoded.event_type not in event_types:
                continue
            if stream_types is not None and row.stream_type not in stream_types:
                continue
            found.append(row)
        return await self._decode_rows(found)

    def _rows_after(self, after: int) -> Iterator[_Row]:
        index = max(after, 0)
        while index < len(self._log):  # sees rows appended while iterating
            yield self._log[index]
            index += 1

    async def _decode_rows(self, rows: list[_Row]) -> list[RecordedEvent]:
        if self._personal is None:
            return [self._decode(row, row.encoded.data) for row in rows]
        payloads = await self._cipher.reveal([(r.encoded.event_id, r.encoded.data) for r in rows])
        return [self._decode(row, data) for row, data in zip(rows, payloads, strict=True)]

    def _decode(self, row: _Row, data: str | bytes) -> RecordedEvent:
        e = row.encoded
        return decode_row(
            self._registry,
            event_id=e.event_id,
            stream_id=row.stream_id,
            stream_type=row.stream_type,
            version=row.version,
            global_position=row.position,
            recorded_at=row.recorded_at,
            event_type=e.event_type,
            schema_version=e.schema_version,
            data=data,
            metadata=e.metadata,
        )

    def write_raw(
        self, stream_id: str, event_type: str, schema_version: int, data: str, stream_type: str = ""
    ) -> None:
        """Store a payload as given, bypassing validation (for tests of old event shapes)."""
        raw = EncodedEvent(uuid.uuid4(), event_type, schema_version, data, "{}")
        self._write(stream_id, stream_type, datetime.now(UTC), raw)

    @property
    def idempotency(self) -> InMemoryIdempotencyStore:
        """Where idempotent commands keep their keys and results (in memory too)."""
        return self._idempotency

    @asynccontextmanager
    async def session(self) -> AsyncIterator[EventStoreSession]:
        """Open a unit-of-work session; appends are applied atomically at commit."""
        session = InMemorySession(self)
        try:
            yield session
        finally:
            session.end()
