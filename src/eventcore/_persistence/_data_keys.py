"""Where wrapped data keys are kept: one per data subject and group, until forgotten.

Each subject has an anchor row (group `*`) besides its keys: forgetting the whole
subject marks it, and key creation checks it, so a key is never created for a subject
forgotten meanwhile. Forgetting destroys the wrapped key but keeps the row as the
record of what happened (who, when, why): no personal data, and no key again.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

__all__ = ["ALL_GROUPS", "DataKey", "DataKeyStore", "InMemoryDataKeyStore"]

ALL_GROUPS = "*"
"""The group of a subject's anchor row, which records the forgetting of every group."""


@dataclass(frozen=True, slots=True)
class DataKey:
    """One row of the data keys: a subject's key for a group, wrapped, or its record.

    `wrapped` is `None` once the key is destroyed (`forgotten_at` says when, with
    `forgotten_by` and `reason`). The anchor row of a subject has group `"*"` and no key.
    """

    subject_id: str
    group: str
    key_id: uuid.UUID | None
    kek_id: str | None
    wrapped: bytes | None
    created_at: datetime
    forgotten_at: datetime | None = None
    forgotten_by: str | None = None
    reason: str | None = None

    @property
    def usable(self) -> bool:
        """Whether this row holds a key (not an anchor, not destroyed)."""
        return self.wrapped is not None and self.key_id is not None


class DataKeyStore(Protocol):
    """The storage of data keys (a table on SQL stores; a dict in memory).

    `conn` is the store's connection to work in, where the backend needs one (SQLite,
    inside a unit of work); `None` means a transaction of the key store's own.
    """

    async def find(self, pairs: Collection[tuple[str, str]]) -> list[DataKey]:
        """The rows of the `(subject, group)` pairs, and the anchors of their subjects."""
        ...

    async def by_ids(self, key_ids: Collection[uuid.UUID]) -> list[DataKey]:
        """The rows of the given key ids (destroyed ones too)."""
        ...

    async def create(self, keys: Sequence[DataKey], conn: Any = None) -> list[DataKey]:
        """Store `keys` unless their pair has a row, or their subject is forgotten;
        then return what `find` would for their pairs (the winners of any race)."""
        ...

    async def forget(
        self,
        subject_id: str,
        group: str | None,
        at: datetime,
        actor: str,
        reason: str,
        conn: Any = None,
    ) -> list[DataKey] | None:
        """Destroy the subject's keys (of `group`, or all) and record it; return the rows
        destroyed, or `None` if that was forgotten before (nothing changes then)."""
        ...

    async def subject(self, subject_id: str) -> list[DataKey]:
        """Every row of the subject (its anchor first), for inspection."""
        ...

    async def to_rewrap(self, current_kek: str, limit: int) -> list[DataKey]:
        """Up to `limit` keys wrapped by another KEK than `current_kek`."""
        ...

    async def rewrap(self, key: DataKey, kek_id: str, wrapped: bytes) -> bool:
        """Replace `key`'s wrapping, unless it was destroyed or re-wrapped meanwhile."""
        ...


class InMemoryDataKeyStore:
    """A [`DataKeyStore`][eventcore.DataKeyStore] in a dict (the in-memory store's)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], DataKey] = {}
        self._ids: dict[uuid.UUID, tuple[str, str]] = {}

    async def find(self, pairs: Collection[tuple[str, str]]) -> list[DataKey]:
        """The rows of `pairs` and the anchors of their subjects."""
        wanted = set(pairs) | {(subject, ALL_GROUPS) for subject, _ in pairs}
        return [self._rows[pair] for pair in wanted if pair in self._rows]

    async def by_ids(self, key_ids: Collection[uuid.UUID]) -> list[DataKey]:
        """The rows of the given key ids."""
        return [self._rows[self._ids[k]] for k in key_ids if k in self._ids]

    async def create(self, keys: Sequence[DataKey], conn: Any = None) -> list[DataKey]:
        """Store `keys` where their pair has no row and their subject is not forgotten."""
        for key in keys:
            anchor = self._rows.get((key.subject_id, ALL_GROUPS))
            if anchor is None:
                anchor = DataKey(key.subject_id, ALL_GROUPS, None, None, None, key.created_at)
                self._rows[(key.subject_id, ALL_GROUPS)] = anchor
            pair = (key.subject_id, key.group)
            if anchor.forgotten_at is None and pair not in self._rows and key.key_id:
                self._rows[pair] = key
                self._ids[key.key_id] = pair
        return await self.find([(k.subject_id, k.group) for k in keys])

    async def forget(
        self,
        subject_id: str,
        group: str | None,
        at: datetime,
        actor: str,
        reason: str,
        conn: Any = None,
    ) -> list[DataKey] | None:
        """Destroy the subject's keys (of `group`, or all) and record who, when, why."""
        target = (subject_id, ALL_GROUPS if group is None else group)
        anchor = self._rows.get((subject_id, ALL_GROUPS))
        record = self._rows.get(target)
        if (anchor and anchor.forgotten_at) or (record and record.forgotten_at):
            return None
        destroyed = [
            row
            for (subject, row_group), row in self._rows.items()
            if subject == subject_id and row.usable and group in (None, row_group)
        ]
        if record is None:
            record = DataKey(subject_id, target[1], None, None, None, at)
        for row in [*destroyed, record]:
            self._rows[(subject_id, row.group)] = replace(
                row, wrapped=None, kek_id=None, forgotten_at=at, forgotten_by=actor, reason=reason
            )
        return destroyed

    async def subject(self, subject_id: str) -> list[DataKey]:
        """Every row of the subject, its anchor first."""
        rows = [row for (subject, _), row in self._rows.items() if subject == subject_id]
        return sorted(rows, key=lambda row: (row.group != ALL_GROUPS, row.group))

    async def to_rewrap(self, current_kek: str, limit: int) -> list[DataKey]:
        """Keys wrapped by another KEK than `current_kek`."""
        found = [r for r in self._rows.values() if r.usable and r.kek_id != current_kek]
        return found[:limit]

    async def rewrap(self, key: DataKey, kek_id: str, wrapped: bytes) -> bool:
        """Replace `key`'s wrapping unless it changed meanwhile."""
        pair = (key.subject_id, key.group)
        row = self._rows.get(pair)
        if row is None or row.wrapped is None or row.kek_id != key.kek_id:
            return False
        self._rows[pair] = replace(row, kek_id=kek_id, wrapped=wrapped)
        return True

    def raw_rows(self) -> list[DataKey]:
        """Every row, as stored (for tests that inspect what is at rest)."""
        return list(self._rows.values())
