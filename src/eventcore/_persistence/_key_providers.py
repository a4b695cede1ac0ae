"""Key-encryption keys: what wraps the data keys before they are stored.

[`KeyProvider`][eventcore.KeyProvider] is the interface a KMS adapter implements (AWS
KMS, Google Cloud KMS, Vault transit: `wrap` and `unwrap` are their encrypt and
decrypt calls); [`LocalKeyProvider`][eventcore.LocalKeyProvider] holds the keys itself,
read from an environment variable or a file.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

from eventcore._exceptions import KeyProviderError, TamperedDataError
from eventcore._persistence._crypto import KEY_BYTES, aead, new_key, open_bytes, seal_bytes

__all__ = ["KeyProvider", "LocalKeyProvider"]

_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@runtime_checkable
class KeyProvider(Protocol):
    """Wraps and unwraps data keys with a key-encryption key (KEK) it keeps.

    Data keys are stored wrapped, next to the id of the KEK that wrapped them, so a
    provider may hold several KEKs: new data keys are wrapped with the current one,
    older ones unwrap with theirs until
    [`PersonalDataKeys.rotate`][eventcore.PersonalDataKeys.rotate] re-wraps them.
    `associated_data` binds a wrapped key to its row (its id, subject and group):
    pass it to the KMS as its encryption context, or as AEAD associated data.
    Failures raise [`KeyProviderError`][eventcore.KeyProviderError].
    """

    @property
    def current_key_id(self) -> str:
        """The id of the KEK that wraps new data keys."""
        ...

    async def wrap(self, data_key: bytes, associated_data: bytes) -> tuple[str, bytes]:
        """Wrap `data_key` with the current KEK; return that KEK's id and the wrapped key."""
        ...

    async def unwrap(self, key_id: str, wrapped: bytes, associated_data: bytes) -> bytes:
        """Unwrap a data key that the KEK `key_id` wrapped."""
        ...


class LocalKeyProvider:
    """A [`KeyProvider`][eventcore.KeyProvider] holding its AES-256 KEKs in memory.

    The keys are given as `{key id: 32-byte key}`; `current` names the one that wraps
    new data keys (default: the first). Load them from the environment or a file:

    ```python
    keys = LocalKeyProvider.from_env("EVENTCORE_KEK")  # "2026-01=<base64>,2025-06=<base64>"
    ```

    The text format is entries `id=base64key` separated by commas or new lines, the
    current key first; [`generate`][eventcore.LocalKeyProvider.generate] makes one.
    Keep the text in your secret manager, never in the database it protects.
    """

    def __init__(self, keys: Mapping[str, bytes], *, current: str | None = None) -> None:
        if not keys:
            raise KeyProviderError("LocalKeyProvider needs at least one key-encryption key")
        for key_id, key in keys.items():
            if not isinstance(key_id, str) or not _KEY_ID.match(key_id):
                raise KeyProviderError(
                    f"key-encryption key id {key_id!r}: 1 to 64 letters, digits, '.', '_', '-'"
                )
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                raise KeyProviderError(
                    f"key-encryption key {key_id!r} must be {KEY_BYTES} bytes (AES-256)"
                )
        self._current = current if current is not None else next(iter(keys))
        if self._current not in keys:
            raise KeyProviderError(f"current key-encryption key {self._current!r} is not given")
        self._ciphers = {key_id: aead(key) for key_id, key in keys.items()}

    @classmethod
    def from_text(cls, text: str, *, source: str = "the text") -> LocalKeyProvider:
        """Keys from `id=base64key` entries (comma or line separated), the current first."""
        keys: dict[str, bytes] = {}
        for entry in re.split(r"[,\n]", text):
            entry = entry.strip()
            if not entry or entry.startswith("#"):
                continue
            key_id, sep, encoded = entry.partition("=")
            if not sep:
                raise KeyProviderError(f"{source}: expected id=base64key entries")
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise KeyProviderError(f"{source}: key {key_id.strip()!r} is not base64") from None
            if key_id.strip() in keys:
                raise KeyProviderError(f"{source}: key id {key_id.strip()!r} appears twice")
            keys[key_id.strip()] = key
        if not keys:
            raise KeyProviderError(f"{source} holds no key-encryption key")
        return cls(keys)

    @classmethod
    def from_env(cls, variable: str = "EVENTCORE_KEK") -> LocalKeyProvider:
        """Keys from the environment variable `variable` (`KeyProviderError` if unset)."""
        text = os.environ.get(variable, "")
        if not text.strip():
            raise KeyProviderError(
                f"no key-encryption key: the environment variable {variable} is not set "
                "(make one with `eventcore personal-data new-key`)"
            )
        return cls.from_text(text, source=f"${variable}")

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> LocalKeyProvider:
        """Keys from a file (`KeyProviderError` if it cannot be read)."""
        try:
            text = Path(path).read_text("utf-8")
        except OSError as error:
            raise KeyProviderError(f"cannot read the key-encryption keys: {error}") from None
        return cls.from_text(text, source=str(path))

    @staticmethod
    def generate(key_id: str) -> str:
        """A new random key as an `id=base64key` entry, to prepend to the current text."""
        if not _KEY_ID.match(key_id):
            raise KeyProviderError(f"key-encryption key id {key_id!r} is not usable")
        return f"{key_id}={base64.b64encode(new_key()).decode()}"

    @property
    def current_key_id(self) -> str:
        """The id of the KEK that wraps new data keys."""
        return self._current

    @property
    def key_ids(self) -> list[str]:
        """The ids of every KEK held (the current one first)."""
        return [self._current, *(k for k in self._ciphers if k != self._current)]

    async def wrap(self, data_key: bytes, associated_data: bytes) -> tuple[str, bytes]:
        """Wrap `data_key` with the current KEK (AES-256-GCM)."""
        return self._current, seal_bytes(self._ciphers[self._current], data_key, associated_data)

    async def unwrap(self, key_id: str, wrapped: bytes, associated_data: bytes) -> bytes:
        """Unwrap a data key wrapped by KEK `key_id`."""
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise KeyProviderError(
                f"the key-encryption key {key_id!r} is not among those given "
                f"({', '.join(self.key_ids)}): keep it until `rotate` has re-wrapped its keys"
            )
        try:
            return open_bytes(cipher, wrapped, associated_data, f"data key (KEK {key_id!r})")
        except TamperedDataError as error:
            raise KeyProviderError(
                f"a data key does not unwrap with the key-encryption key {key_id!r}: {error}"
            ) from None
