"""AES-256-GCM for personal data: sealed field values, wrapped data keys, sealed snapshots.

The `cryptography` package is an optional extra (`eventcore[personal-data]`): it is
imported when a key is first used, and its absence is a clear `PersonalDataError`.

A sealed field value is a JSON object standing where the value was:
`{"eventcore:pii": "<data key id>.<base64 of nonce + ciphertext + tag>", "r": <replacement>}`.
The ciphertext's associated data is the owner's id (the event's or message's id) and the
field's name, so a value moved to another event or field fails authentication.
"""

from __future__ import annotations

import binascii
import os
import uuid
from typing import TYPE_CHECKING, Any

import pydantic_core

from eventcore._exceptions import PersonalDataError, TamperedDataError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "KEY_BYTES",
    "MARK",
    "MARK_BYTES",
    "MARK_TEXT",
    "SNAPSHOT_MARK",
    "aead",
    "derive_key",
    "envelope_key_id",
    "is_envelope",
    "new_key",
    "open_bytes",
    "open_value",
    "seal_bytes",
    "seal_value",
]

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12
MARK = "eventcore:pii"
MARK_TEXT = f'"{MARK}"'
MARK_BYTES = MARK_TEXT.encode()
SNAPSHOT_MARK = "eventcore:sealed-snapshot"
_KEY_ID_HEX = 32
_urandom = os.urandom
_b2a = binascii.b2a_base64
_a2b = binascii.a2b_base64
_to_json = pydantic_core.to_json
_from_json = pydantic_core.from_json


def _aesgcm_class() -> type[AESGCM]:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ModuleNotFoundError as error:
        if error.name is None or not error.name.startswith("cryptography"):
            raise
        raise PersonalDataError(
            "encrypting personal data needs the cryptography package: "
            "pip install 'eventcore[personal-data]'"
        ) from None
    return AESGCM


def _invalid_tag() -> type[Exception]:
    from cryptography.exceptions import InvalidTag

    return InvalidTag


def aead(key: bytes) -> AESGCM:
    """An AES-256-GCM cipher for `key` (32 bytes)."""
    if len(key) != KEY_BYTES:
        raise PersonalDataError(f"an AES-256 key is {KEY_BYTES} bytes, not {len(key)}")
    return _aesgcm_class()(key)


def new_key() -> bytes:
    """A fresh random 256-bit key."""
    _aesgcm_class()  # fail early, before anything is stored, without cryptography
    return _urandom(KEY_BYTES)


def seal_bytes(cipher: AESGCM, plaintext: bytes, associated: bytes) -> bytes:
    """`nonce + ciphertext + tag`, with a fresh random nonce."""
    nonce = _urandom(NONCE_BYTES)
    return nonce + cipher.encrypt(nonce, plaintext, associated)


def open_bytes(cipher: AESGCM, sealed: bytes, associated: bytes, where: str) -> bytes:
    """The plaintext of `seal_bytes`'s output; `TamperedDataError` if it does not verify."""
    try:
        return cipher.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated)
    except _invalid_tag():
        raise TamperedDataError(where) from None
    except (ValueError, TypeError) as error:
        raise TamperedDataError(where, str(error)) from None


def seal_value(
    cipher: AESGCM, key_id: str, owner: bytes, field: str, value: Any, replacement: Any
) -> dict[str, Any]:
    """The envelope that stands for `value` (any JSON value) of `field` at rest."""
    sealed = seal_bytes(cipher, _to_json(value), owner + field.encode())
    envelope: dict[str, Any] = {MARK: f"{key_id}.{_b2a(sealed, newline=False).decode()}"}
    if replacement is not None:
        envelope["r"] = replacement
    return envelope


def is_envelope(value: object) -> bool:
    """Whether a payload's value is a sealed field value."""
    return type(value) is dict and MARK in value


def envelope_key_id(envelope: dict[str, Any], where: str) -> str:
    """The id (hex) of the data key that sealed `envelope`."""
    text = envelope.get(MARK)
    if not isinstance(text, str) or len(text) < _KEY_ID_HEX + 2 or text[_KEY_ID_HEX] != ".":
        raise TamperedDataError(where, "malformed envelope")
    return text[:_KEY_ID_HEX]


def open_value(
    cipher: AESGCM | None, envelope: dict[str, Any], owner: bytes, field: str, where: str
) -> Any:
    """The value sealed in `envelope`, or its replacement when the key is gone (`None`)."""
    if cipher is None:
        return envelope.get("r")
    text: str = envelope[MARK]
    try:
        sealed = _a2b(text[_KEY_ID_HEX + 1 :])
    except binascii.Error:
        raise TamperedDataError(where, "malformed envelope") from None
    return _from_json(open_bytes(cipher, sealed, owner + field.encode(), where))


def derive_key(keys: list[bytes], info: bytes) -> bytes:
    """One key derived (HKDF-SHA256) from several: lost with any one of them."""
    from cryptography.hazmat.primitives.hashes import SHA256
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=SHA256(), length=KEY_BYTES, salt=None, info=info).derive(b"".join(keys))


def key_id_hex(key_id: uuid.UUID) -> str:
    """How a data key id is written in envelopes."""
    return key_id.hex
