"""Snapshots of streams that hold personal data, sealed with every key they depend on.

An aggregate's state is built from its events, so a snapshot may hold the personal data
of any subject whose data its stream carries. Such a snapshot is sealed as a whole with
a key derived from all of those subjects' data keys: forgetting any one of them makes
the snapshot unreadable, and the repository then replays the events (which read as
replacements). Snapshots of streams without personal data are stored as they are.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from eventcore._persistence._crypto import (
    SEALED_KEY_IDS,
    SNAPSHOT_MARK,
    aead,
    derive_key,
    open_bytes,
    seal_bytes,
)
from eventcore._persistence._personal_data import PersonalDataKeys
from eventcore._persistence._snapshots import Snapshot, SnapshotStore

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["SealedSnapshotStore", "StreamKeyIds", "key_ids_in"]

StreamKeyIds = Callable[[str, int, int], Awaitable[set[str]]]
"""`(stream_id, after_version, up_to_version)` -> the ids of the data keys that seal
personal data in the stream's events of those versions."""


def key_ids_in(payloads: Iterable[str | bytes]) -> set[str]:
    """The data key ids that sealed values in `payloads` name."""
    found: set[str] = set()
    for payload in payloads:
        text = payload if isinstance(payload, str) else payload.decode()
        found.update(SEALED_KEY_IDS.findall(text))
    return found


class SealedSnapshotStore:
    """A [`SnapshotStore`][eventcore.SnapshotStore] that seals snapshots of streams with
    personal data (see the module's docstring); it wraps the store's own."""

    def __init__(
        self, inner: SnapshotStore, keys: PersonalDataKeys, stream_key_ids: StreamKeyIds
    ) -> None:
        self.inner = inner
        self._keys = keys
        self._stream_key_ids = stream_key_ids

    async def get(self, stream_id: str) -> Snapshot | None:
        """The latest snapshot, opened; `None` if a key it depends on is gone."""
        snapshot = await self.inner.get(stream_id)
        if snapshot is None or SNAPSHOT_MARK not in snapshot.state:
            return snapshot
        sealed = snapshot.state[SNAPSHOT_MARK]
        key_ids = list(sealed["keys"])
        cipher = await self._cipher(key_ids, snapshot)
        if cipher is None:
            return None
        where = f"snapshot of {stream_id!r} at version {snapshot.version}"
        plain = open_bytes(cipher, bytes.fromhex(sealed["c"]), _context(snapshot), where)
        return replace(snapshot, state=json.loads(plain))

    async def save(self, snapshot: Snapshot) -> None:
        """Store `snapshot`, sealed if its stream holds personal data (skipped if a key
        it depends on is gone: it would hold data of a forgotten subject)."""
        previous = await self.inner.get(snapshot.stream_id)
        after, key_ids = 0, set[str]()
        if previous is not None and previous.version <= snapshot.version:
            after = previous.version
            if SNAPSHOT_MARK in previous.state:
                key_ids.update(previous.state[SNAPSHOT_MARK]["keys"])
        key_ids |= await self._stream_key_ids(snapshot.stream_id, after, snapshot.version)
        if not key_ids:
            await self.inner.save(snapshot)
            return
        ordered = sorted(key_ids)
        cipher = await self._cipher(ordered, snapshot)
        if cipher is None:
            return
        plain = json.dumps(dict(snapshot.state)).encode()
        sealed = seal_bytes(cipher, plain, _context(snapshot))
        state = {SNAPSHOT_MARK: {"keys": ordered, "c": sealed.hex()}}
        await self.inner.save(replace(snapshot, state=state))

    async def _cipher(self, key_ids: list[str], snapshot: Snapshot) -> AESGCM | None:
        keys = await self._keys.keys_by_id(key_ids)
        materials = []
        for key_id in key_ids:
            key = keys.get(key_id)
            if key is None:
                return None
            materials.append(key.material)
        info = f"eventcore snapshot {snapshot.stream_id}".encode()
        return aead(derive_key(materials, info))


def _context(snapshot: Snapshot) -> bytes:
    return (
        f"{snapshot.stream_id}\x00{snapshot.aggregate_type}\x00{snapshot.version}\x00"
        f"{snapshot.schema_version}"
    ).encode()
