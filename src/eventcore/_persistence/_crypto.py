"""AES-256-GCM for personal data: sealed field values, wrapped data keys, sealed snapshots.

The `cryptography` package is an optional extra (`eventcore-es[personal-data]`): it is
imported when a key is first used, and its absence is a clear `PersonalDataError`.

A sealed field value is a JSON object standing where the value was:
`{"eventcore:pii": "<data key id>.<base64 of nonce + ciphertext + tag>[.<base64 of the
replacement's JSON>]"}`.
The ciphertext's associated data is the owner's id (the event's or message's id) and the
field's name, so a value moved to another event or field fails authentication.
"""

from __future__ import annotations

import binascii
import os
import re
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
    "SEALED_KEY_IDS",
    "SEALED_VALUE",
    "SNAPSHOT_MARK",
    "aead",
    "derive_key",
    "field_before",
    "new_key",
    "open_bytes",
    "open_text",
    "replacement_of",
    "seal_bytes",
    "seal_value",
    "tampered",
]

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12
MARK = "eventcore:pii"
MARK_TEXT = f'"{MARK}"'
MARK_BYTES = MARK_TEXT.encode()
SNAPSHOT_MARK = "eventcore:sealed-snapshot"
_urandom = os.urandom
_b2a = binascii.b2a_base64
_a2b = binascii.a2b_base64
_to_json = pydantic_core.to_json


def _aesgcm_class() -> type[AESGCM]:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ModuleNotFoundError as error:
        if error.name is None or not error.name.startswith("cryptography"):
            raise
        raise PersonalDataError(
            "encrypting personal data needs the cryptography package: "
            "pip install 'eventcore-es[personal-data]'"
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
    """The envelope that stands for `value` (any JSON value) of `field` at rest.

    One string: `<key id>.<base64 sealed>` and, unless the replacement is `null`,
    `.<base64 of the replacement's JSON>` (readable without the key).
    """
    sealed = seal_bytes(cipher, _to_json(value), owner + field.encode())
    text = f"{key_id}.{_b2a(sealed, newline=False).decode()}"
    if replacement is not None:
        text += f".{_b2a(_to_json(replacement), newline=False).decode()}"
    return {MARK: text}


SEALED_VALUE = re.compile(
    r'\{\s*"eventcore:pii":\s*"([0-9a-f]{32})\.([A-Za-z0-9+/=]+)(?:\.([A-Za-z0-9+/=]+))?"\s*\}'
)
"""A sealed value in JSON text (compact, or as PostgreSQL writes it); groups: the key
id, the sealed value, the replacement (or none)."""

SEALED_KEY_IDS = re.compile(r'"eventcore:pii":\s*"([0-9a-f]{32})\.')
"""The key ids of the sealed values in JSON text."""


def field_before(text: str, start: int) -> str:
    """The name of the field whose value starts at `start` in `text` (`"name": ` before)."""
    end = text.rfind('"', 0, start)
    return text[text.rfind('"', 0, end) + 1 : end]


def replacement_of(encoded: str | None) -> str:
    """The JSON text of a sealed value's replacement (`null` when it has none)."""
    return "null" if encoded is None else _a2b(encoded).decode()


def open_text(cipher: AESGCM, sealed: str, associated: bytes) -> str:
    """The JSON text sealed in `sealed` (base64); raises what `tampered` explains."""
    raw = _a2b(sealed)
    return cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], associated).decode()


def tampered(error: Exception, owner: bytes, field: str) -> Exception:
    """The error to raise for `error` met opening `field` of `owner` (built only then)."""
    where = f"{uuid.UUID(bytes=owner)} field {field!r}"
    if isinstance(error, _invalid_tag()):
        return TamperedDataError(where)
    if isinstance(error, binascii.Error | ValueError | TypeError | UnicodeDecodeError):
        return TamperedDataError(where, "malformed envelope")
    return error


def derive_key(keys: list[bytes], info: bytes) -> bytes:
    """One key derived (HKDF-SHA256) from several: lost with any one of them."""
    from cryptography.hazmat.primitives.hashes import SHA256
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=SHA256(), length=KEY_BYTES, salt=None, info=info).derive(b"".join(keys))


def key_id_hex(key_id: uuid.UUID) -> str:
    """How a data key id is written in envelopes."""
    return key_id.hex
