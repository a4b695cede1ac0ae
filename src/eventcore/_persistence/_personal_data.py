"""`PersonalDataKeys`: a store's data keys, cached, and forgetting a subject by them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Collection, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from eventcore._domain._events import EventRegistry
from eventcore._domain._forgotten import SubjectForgotten
from eventcore._domain._metadata import NewEvent
from eventcore._domain._personal import MAX_GROUP_LENGTH, forgotten_stream
from eventcore._exceptions import PersonalDataError, TamperedDataError
from eventcore._persistence._crypto import aead, new_key
from eventcore._persistence._data_keys import ALL_GROUPS, DataKey, DataKeyStore
from eventcore._persistence._key_providers import KeyProvider
from eventcore._persistence._store import EventStoreSession, ExpectedVersion, StreamAppend

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["MAX_SUBJECT_LENGTH", "PersonalDataKeys", "UsableKey", "check_subject_id"]

MAX_SUBJECT_LENGTH = 200
FORGOTTEN_STREAM_TYPE = "eventcore.DataSubject"
_CACHE_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class UsableKey:
    """A data key unwrapped: its id as written in envelopes, its cipher, its bytes."""

    key_id: str
    cipher: AESGCM
    material: bytes


def check_subject_id(value: object, where: str) -> str:
    """The subject id as text, or `PersonalDataError` naming `where` it came from."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PersonalDataError(f"{where}: the data subject's id must be a str, not {value!r}")
    text = str(value)
    if not text.strip() or len(text) > MAX_SUBJECT_LENGTH or not text.isprintable():
        raise PersonalDataError(
            f"{where}: the data subject's id {text[:40]!r} must be 1 to {MAX_SUBJECT_LENGTH} "
            "printable characters"
        )
    return text


def _wrap_context(key_id: uuid.UUID, subject_id: str, group: str) -> bytes:
    return b"eventcore:data-key\x00" + key_id.bytes + f"{subject_id}\x00{group}".encode()


class PersonalDataKeys:
    """The data keys of a store's personal data: forget subjects, inspect, rotate.

    Get it from the store (`store.personal_data`) once the store has a
    [`KeyProvider`][eventcore.KeyProvider]. Unwrapped keys are cached for
    `cache_seconds`: a subject forgotten by another process stops being readable here
    within that time (at once in this process).
    """

    def __init__(
        self, provider: KeyProvider, store: DataKeyStore, *, cache_seconds: float = 60.0
    ) -> None:
        if not isinstance(provider, KeyProvider):
            raise PersonalDataError(f"{provider!r} is not a KeyProvider")
        self.provider = provider
        self.store = store
        self._ttl = cache_seconds
        self._by_id: dict[str, tuple[UsableKey, float]] = {}
        self._by_pair: dict[tuple[str, str], tuple[UsableKey, float]] = {}
        self._dead_ids: set[str] = set()  # destroyed keys never come back
        # The ciphers of the keys cached by id (None: destroyed), for the hot path.
        self._ciphers: dict[str, AESGCM | None] = {}
        self._purge_at = float("inf")
        self._dead_pairs: set[tuple[str, str]] = set()
        self._session: Callable[[], AbstractAsyncContextManager[EventStoreSession]] | None = None

    def bind(
        self,
        session: Callable[[], AbstractAsyncContextManager[EventStoreSession]],
        registry: EventRegistry,
    ) -> None:
        """Attach to the event store whose sessions `forget` appends in."""
        self._session = session
        if SubjectForgotten.event_type_name not in registry:
            registry.register(SubjectForgotten)

    # -- keys for sealing and opening -------------------------------------------------

    async def keys_for(
        self, pairs: Collection[tuple[str, str]], conn: Any = None
    ) -> dict[tuple[str, str], UsableKey | None]:
        """The key of each `(subject, group)`, created if it has none; `None` if forgotten."""
        now = time.monotonic()
        found: dict[tuple[str, str], UsableKey | None] = {}
        missing = []
        for pair in pairs:
            cached = self._by_pair.get(pair)
            if cached is not None and cached[1] > now:
                found[pair] = cached[0]
            elif pair in self._dead_pairs or (pair[0], ALL_GROUPS) in self._dead_pairs:
                found[pair] = None
            else:
                missing.append(pair)
        if missing:
            rows = await self.store.find(missing)
            unknown = await self._settle(missing, rows, found, {})
            if unknown:
                made = {pair: await self._new_key(pair) for pair in unknown}
                rows = await self.store.create([key for key, _ in made.values()], conn)
                materials = {key.key_id: m for key, m in made.values() if key.key_id}
                if await self._settle(unknown, rows, found, materials):
                    raise PersonalDataError(f"data keys of {unknown[:3]} could not be stored")
        return found

    async def keys_by_id(self, key_ids: Iterable[str]) -> dict[str, UsableKey | None]:
        """The keys with these envelope ids (hex); `None` for destroyed ones.

        An id with no row at all is a `TamperedDataError`: destroyed keys keep theirs.
        """
        now = time.monotonic()
        found: dict[str, UsableKey | None] = {}
        missing: dict[uuid.UUID, str] = {}
        for key_id in key_ids:
            cached = self._by_id.get(key_id)
            if cached is not None and cached[1] > now:
                found[key_id] = cached[0]
            elif key_id in self._dead_ids:
                found[key_id] = None
            else:
                missing[uuid.UUID(hex=key_id)] = key_id
        if missing:
            destroyed = set()
            for row in await self.store.by_ids(list(missing)):
                if row.key_id is not None and row.usable:
                    found[missing[row.key_id]] = await self._unwrap(row)
                elif row.key_id is not None:
                    destroyed.add(missing[row.key_id])
            for key_id in missing.values():
                if key_id not in found:
                    if key_id not in destroyed:
                        raise TamperedDataError(
                            f"data key {key_id}",
                            "no such key (destroyed keys keep their row): the value was "
                            "altered, or the data keys are not this store's",
                        )
                    found[key_id] = None
                    self._remember_dead(self._dead_ids, key_id)
                    self._ciphers[key_id] = None
        return found

    def cached_ciphers(self) -> dict[str, AESGCM | None]:
        """The ciphers of the keys cached now, by envelope id (`None`: destroyed).

        Expired keys are dropped first; a key missing here is fetched by `keys_by_id`.
        """
        now = time.monotonic()
        if now >= self._purge_at:
            for key_id, (_, expires) in list(self._by_id.items()):
                if expires <= now:
                    del self._by_id[key_id]
                    self._ciphers.pop(key_id, None)
            self._purge_at = min((e for _, e in self._by_id.values()), default=float("inf"))
        return self._ciphers

    async def _settle(
        self,
        pairs: list[tuple[str, str]],
        rows: list[DataKey],
        found: dict[tuple[str, str], UsableKey | None],
        materials: dict[uuid.UUID, bytes],
    ) -> list[tuple[str, str]]:
        """Resolve `pairs` from their rows into `found`; return those without a row."""
        by_pair = {(row.subject_id, row.group): row for row in rows}
        unknown = []
        for pair in pairs:
            anchor = by_pair.get((pair[0], ALL_GROUPS))
            row = by_pair.get(pair)
            if (anchor is not None and anchor.forgotten_at is not None) or (
                row is not None and not row.usable
            ):
                found[pair] = None
                self._remember_dead(self._dead_pairs, pair)
            elif row is None:
                unknown.append(pair)
            else:
                assert row.key_id is not None
                material = materials.get(row.key_id)
                found[pair] = await self._unwrap(row, material)
        return unknown

    async def _new_key(self, pair: tuple[str, str]) -> tuple[DataKey, bytes]:
        key_id = uuid.uuid4()
        material = new_key()
        kek_id, wrapped = await self.provider.wrap(material, _wrap_context(key_id, *pair))
        return DataKey(pair[0], pair[1], key_id, kek_id, wrapped, datetime.now(UTC)), material

    async def _unwrap(self, row: DataKey, material: bytes | None = None) -> UsableKey:
        assert row.key_id is not None
        assert row.kek_id is not None
        assert row.wrapped is not None
        if material is None:
            context = _wrap_context(row.key_id, row.subject_id, row.group)
            material = await self.provider.unwrap(row.kek_id, row.wrapped, context)
        key = UsableKey(row.key_id.hex, aead(material), material)
        expires = time.monotonic() + self._ttl
        if len(self._by_id) >= _CACHE_LIMIT:
            self._by_id.clear()
            self._by_pair.clear()
            self._ciphers.clear()
        self._by_id[key.key_id] = (key, expires)
        self._ciphers[key.key_id] = key.cipher
        self._purge_at = min(self._purge_at, expires)
        self._by_pair[(row.subject_id, row.group)] = (key, expires)
        return key

    @staticmethod
    def _remember_dead(dead: set[Any], item: Any) -> None:
        if len(dead) >= _CACHE_LIMIT:
            dead.clear()
        dead.add(item)

    def clear_cache(self) -> None:
        """Drop every cached key (they are fetched and unwrapped again when next used)."""
        self._by_id.clear()
        self._by_pair.clear()
        self._ciphers.clear()
        self._dead_ids.clear()
        self._dead_pairs.clear()

    # -- forgetting, inspecting, rotating ----------------------------------------------

    async def forget(
        self, subject_id: str, *, actor: str, reason: str, group: str | None = None
    ) -> SubjectForgotten | None:
        """Destroy the subject's data keys (of `group` only, if given), for good.

        From then on every read of the subject's personal data (streams, the log,
        snapshots, upcasters, rebuilt projections, unsent outbox messages) yields each
        field's replacement, and personal data appended for it later is stored as the
        replacement. In the same transaction, a
        [`SubjectForgotten`][eventcore.SubjectForgotten] event records who (`actor`),
        when and why (`reason`), for projectors to purge what they hold. Returns that
        event, or `None` if the subject (or group) was forgotten before.
        """
        subject_id = check_subject_id(subject_id, "forget()")
        for name, value in (("actor", actor), ("reason", reason)):
            if not isinstance(value, str) or not value.strip() or len(value) > 2000:
                raise PersonalDataError(f"forget(): {name} must be a non-empty str (who, why)")
        if group is not None and (not isinstance(group, str) or len(group) > MAX_GROUP_LENGTH):
            raise PersonalDataError(f"forget(): group {group!r} is not a key group")
        if self._session is None:
            raise PersonalDataError("these PersonalDataKeys are not bound to an event store")
        at = datetime.now(UTC)
        async with self._session() as session:
            conn = getattr(session, "connection", None)
            destroyed = await self.store.forget(subject_id, group, at, actor, reason, conn)
            if destroyed is None:
                await session.rollback()
                event = None
            else:
                event = SubjectForgotten(
                    subject_id=subject_id,
                    group=group,
                    forgotten_at=at,
                    actor=actor,
                    reason=reason,
                    keys_destroyed=len(destroyed),
                )
                stream = forgotten_stream(subject_id)
                append = StreamAppend(
                    stream, [NewEvent(event)], ExpectedVersion.ANY, FORGOTTEN_STREAM_TYPE
                )
                await session.commit([append])
        self._drop(subject_id, group)
        return event

    def _drop(self, subject_id: str, group: str | None) -> None:
        for pair in [p for p in self._by_pair if p[0] == subject_id and group in (None, p[1])]:
            key, _ = self._by_pair.pop(pair)
            self._by_id.pop(key.key_id, None)
            self._dead_ids.add(key.key_id)
            self._ciphers[key.key_id] = None
        self._dead_pairs.add((subject_id, ALL_GROUPS if group is None else group))

    async def status(self, subject_id: str) -> list[DataKey]:
        """The subject's rows: its keys and, once forgotten, who forgot it, when and why."""
        return await self.store.subject(check_subject_id(subject_id, "status()"))

    async def has_keys(self, subject_id: str) -> bool:
        """Whether the subject has any usable data key (`False` once forgotten)."""
        return any(row.usable for row in await self.status(subject_id))

    async def rotate(self, *, batch_size: int = 500) -> int:
        """Re-wrap every data key with the provider's current KEK; return how many.

        Events are not rewritten: only the wrapping of each data key changes. Keep
        the old KEK in the provider until this returns; then it can go.
        """
        current = self.provider.current_key_id
        done = 0
        while True:
            batch = await self.store.to_rewrap(current, batch_size)
            if not batch:
                return done
            for row in batch:
                assert row.key_id is not None
                assert row.kek_id is not None
                assert row.wrapped is not None
                context = _wrap_context(row.key_id, row.subject_id, row.group)
                material = await self.provider.unwrap(row.kek_id, row.wrapped, context)
                kek_id, wrapped = await self.provider.wrap(material, context)
                if kek_id == row.kek_id:
                    raise PersonalDataError(
                        f"the provider wraps with {kek_id!r} though its current key is "
                        f"{current!r}: nothing to rotate to"
                    )
                done += await self.store.rewrap(row, kek_id, wrapped)
