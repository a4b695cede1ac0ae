"""`Protection`: what a store needs for personal data, set up once from its key provider."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from eventcore._domain._events import EventRegistry
from eventcore._exceptions import PersonalDataError
from eventcore._persistence._data_keys import DataKeyStore
from eventcore._persistence._key_providers import KeyProvider
from eventcore._persistence._payload_cipher import PayloadCipher
from eventcore._persistence._personal_data import PersonalDataKeys
from eventcore._persistence._sealed_snapshots import SealedSnapshotStore, StreamKeyIds
from eventcore._persistence._snapshots import SnapshotStore
from eventcore._persistence._store import EventStoreSession

__all__ = ["Protection"]


@dataclass(frozen=True, slots=True)
class Protection:
    """A store's personal data keys (if it has a key provider), the cipher of its
    payloads, and its snapshot store (sealing snapshots when it has keys)."""

    keys: PersonalDataKeys | None
    cipher: PayloadCipher
    snapshots: SnapshotStore

    @classmethod
    def of(
        cls,
        provider: KeyProvider | None,
        *,
        data_keys: Callable[[], DataKeyStore],
        cache_seconds: float,
        session: Callable[[], AbstractAsyncContextManager[EventStoreSession]],
        registry: EventRegistry,
        snapshots: SnapshotStore,
        stream_key_ids: StreamKeyIds,
    ) -> Protection:
        """Set up personal data for a store (none without a `provider`)."""
        if provider is None:
            return cls(None, PayloadCipher(None), snapshots)
        keys = PersonalDataKeys(provider, data_keys(), cache_seconds=cache_seconds)
        keys.bind(session, registry)
        return cls(keys, PayloadCipher(keys), SealedSnapshotStore(snapshots, keys, stream_key_ids))

    def required(self) -> PersonalDataKeys:
        """The keys, or `PersonalDataError` for a store without a key provider."""
        if self.keys is None:
            raise PersonalDataError("this store has no key_provider, so no personal data")
        return self.keys
