"""`PayloadCipher`: the step every store applies to serialised payloads on write and read.

On write it seals the personal fields of each payload whose class declares some (with
the key of the payload's data subject and the field's group); on read it opens every
sealed value it finds, or puts the field's replacement where the key is gone. Payloads
without sealed values pass through untouched, without being parsed.
"""

from __future__ import annotations

import binascii
import re
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pydantic_core

from eventcore._domain._personal import PersonalSchema, schema_of
from eventcore._exceptions import PersonalDataError, TamperedDataError
from eventcore._persistence._codec import EncodedEvent, PreparedAppend
from eventcore._persistence._crypto import (
    MARK,
    MARK_BYTES,
    MARK_TEXT,
    SEALED_KEY_IDS,
    SEALED_VALUE,
    field_before,
    replacement_of,
    seal_value,
    tampered,
)
from eventcore._persistence._personal_data import PersonalDataKeys, check_subject_id
from eventcore._persistence._store import StreamAppend

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["PayloadCipher", "Sealable", "has_sealed_values"]

_from_json = pydantic_core.from_json
_a2b = binascii.a2b_base64
_to_json = pydantic_core.to_json

Sealable = tuple[PersonalSchema, uuid.UUID, "str | bytes", str]
"""What to seal: the class's schema, the owner's id (event or message), the JSON
payload, and a description of it for error messages."""


def has_sealed_values(payload: str | bytes) -> bool:
    """Whether a stored payload may hold sealed values (a fast substring test)."""
    return (MARK_TEXT in payload) if isinstance(payload, str) else (MARK_BYTES in payload)


class PayloadCipher:
    """Seals and opens personal data in payloads with a store's `PersonalDataKeys`.

    Without keys (a store given no key provider) it refuses to store personal data
    (`PersonalDataError`), or with `shred=True` stores the replacements instead.
    """

    def __init__(self, keys: PersonalDataKeys | None) -> None:
        self.keys = keys

    async def protect_appends(
        self, appends: Sequence[StreamAppend], prepared: list[PreparedAppend], conn: Any = None
    ) -> list[PreparedAppend]:
        """`prepared` (encoded from `appends`) with the personal fields sealed."""
        items: list[Sealable] = []
        places: list[tuple[int, int]] = []
        for a, (append, encoded) in enumerate(zip(appends, prepared, strict=True)):
            for e, (new, event) in enumerate(zip(append.events, encoded.events, strict=True)):
                schema = schema_of(type(new.event))
                if schema is not None:
                    what = f"event {event.event_type!r} for stream {encoded.stream_id!r}"
                    items.append((schema, event.event_id, event.data, what))
                    places.append((a, e))
        if not items:
            return prepared
        sealed = await self.seal(items, conn)
        out = [replace(p, events=list(p.events)) for p in prepared]
        for (a, e), data in zip(places, sealed, strict=True):
            event = out[a].events[e]
            out[a].events[e] = EncodedEvent(
                event.event_id, event.event_type, event.schema_version, data, event.metadata
            )
        return out

    async def seal(
        self, items: Sequence[Sealable], conn: Any = None, *, shred: bool = False
    ) -> list[str]:
        """Each payload of `items` with its personal fields sealed (as JSON text).

        Fields of a forgotten subject are stored as their replacement. Without keys,
        `shred` stores every personal field as its replacement; otherwise it raises.
        """
        parsed = []
        pairs: set[tuple[str, str]] = set()
        for schema, owner, payload, what in items:
            data = _from_json(payload)
            subject = check_subject_id(data.get(schema.subject_field), what)
            parsed.append((schema, owner, data, subject))
            pairs.update((subject, f.group) for f in schema.fields)
        if self.keys is None:
            if not shred:
                schema, _, _, what = items[0]
                raise PersonalDataError(
                    f"{what} has personal data fields "
                    f"({', '.join(f.name for f in schema.fields)}) but the store has no "
                    "key provider: give it key_provider=... so they are not stored in clear"
                )
            keys = dict.fromkeys(pairs)
        else:
            keys = await self.keys.keys_for(pairs, conn)
        out = []
        for schema, owner, data, subject in parsed:
            owner_bytes = owner.bytes
            for field in schema.fields:
                value = data.get(field.name)
                if value is None or (type(value) is dict and MARK in value):
                    continue  # nothing to hide, or sealed already (a deadline firing)
                key = keys[(subject, field.group)]
                data[field.name] = (
                    field.replacement
                    if key is None
                    else seal_value(
                        key.cipher, key.key_id, owner_bytes, field.name, value, field.replacement
                    )
                )
            out.append(_to_json(data).decode())
        return out

    async def reveal(self, items: Sequence[tuple[uuid.UUID, str | bytes]]) -> list[str | bytes]:
        """Each `(owner id, payload)`'s payload with its sealed values opened (JSON text).

        A value whose key is gone (a forgotten subject) becomes its replacement.
        Payloads without sealed values come back as they are, unparsed.
        """
        out: list[str | bytes] = [payload for _, payload in items]
        keys = self.keys
        ciphers = None if keys is None else keys.cached_ciphers()
        missing: list[tuple[int, str]] = []
        for index, (owner, payload) in enumerate(items):
            if type(payload) is bytes:
                if MARK_BYTES not in payload:
                    continue
                text = payload.decode()
            elif MARK_TEXT in payload:
                text = str(payload)
            else:
                continue
            if ciphers is None:
                raise PersonalDataError(
                    "stored payloads hold encrypted personal data, but the store has no key "
                    "provider to open them: give it the key_provider=... it was written with"
                )
            try:
                out[index] = _opened(text, owner, ciphers)
            except KeyError:  # a key not cached: fetched for all such payloads at once
                missing.append((index, text))
        if missing:
            assert keys is not None
            key_ids = {k for _, text in missing for k in SEALED_KEY_IDS.findall(text)}
            fetched = await keys.keys_by_id(key_ids)
            known = {k: None if key is None else key.cipher for k, key in fetched.items()}
            for index, text in missing:
                out[index] = _opened(text, items[index][0], known)
        return out


def _opened(text: str, owner_id: uuid.UUID, ciphers: dict[str, AESGCM | None]) -> str:
    """`text` with each sealed value replaced by its JSON (or its replacement's).

    Raises `KeyError` if a key is not in `ciphers`.
    """
    owner = owner_id.bytes
    name = ""

    def opened(match: re.Match[str]) -> str:
        nonlocal name
        key_id, sealed, replacement = match.groups()
        cipher = ciphers[key_id]
        if cipher is None:  # the key is gone: the subject was forgotten
            return replacement_of(replacement)
        name = field_before(text, match.start())
        raw = _a2b(sealed)
        return cipher.decrypt(raw[:12], raw[12:], owner + name.encode()).decode()

    try:
        result = SEALED_VALUE.sub(opened, text)
    except KeyError:
        raise
    except Exception as error:
        raise tampered(error, owner, name) from None
    if MARK_TEXT in result:
        raise TamperedDataError(str(owner_id), "malformed envelope")
    return result
