"""The events, aggregate, projector and helpers of the personal data contract suite.

The events join the process-wide `default_registry` under names starting with
`eventcore.contract.`. `NAME`, `EMAIL` and `PHONE` are the personal values the suite
writes: `raw_text` (what a store holds at rest) must never contain them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Annotated, Any

from sqlalchemy import select

from eventcore import (
    Aggregate,
    DataSubjectId,
    DomainEvent,
    EventStore,
    InMemoryEventStore,
    KeyProvider,
    LocalKeyProvider,
    NewEvent,
    PersonalData,
    ProjectionContext,
    Projector,
    SqlAlchemyEventStore,
    SubjectForgotten,
    apply,
    projects,
    upcaster,
)

__all__ = [
    "EMAIL",
    "NAME",
    "PHONE",
    "ContractEnrolled",
    "ContractNicknamed",
    "ContractPerson",
    "Directory",
    "SwappableKeys",
    "default_raw_text",
    "enrolled",
    "new_keys",
]

NAME = "Ada Lovelace"
EMAIL = "ada@analytical.example"
PHONE = "+44 20 7946 0018"
FORGOTTEN = "<forgotten>"


class ContractEnrolled(DomainEvent, type_name="eventcore.contract.Enrolled"):
    """An event with three personal fields (one in its own key group) and a plain one."""

    person_id: Annotated[str, DataSubjectId()]
    name: Annotated[str, PersonalData(replacement=FORGOTTEN)]
    email: Annotated[str | None, PersonalData(group="contact")]
    phone: Annotated[str, PersonalData()]
    course: str


class ContractNicknamed(DomainEvent, type_name="eventcore.contract.Nicknamed", version=2):
    """Version 2 renamed `nick` to `nickname`; version 1 was personal data too."""

    person_id: Annotated[str, DataSubjectId()]
    nickname: Annotated[str, PersonalData(replacement=FORGOTTEN)]


class NicknamedV1(DomainEvent, type_name="eventcore.contract.Nicknamed", version=1, registry=None):
    """How version 1 of `ContractNicknamed` was written (registered nowhere)."""

    person_id: Annotated[str, DataSubjectId()]
    nick: Annotated[str, PersonalData(replacement=FORGOTTEN)]


@upcaster(ContractNicknamed, from_version=1)
def _nick_to_nickname(data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    data["nickname"] = data.pop("nick")
    return data


def enrolled(person_id: str, course: str = "cs101", **values: Any) -> NewEvent:
    """A new `ContractEnrolled` with the suite's personal values (or those given)."""
    fields: dict[str, Any] = {"name": NAME, "email": EMAIL, "phone": PHONE, **values}
    return NewEvent(ContractEnrolled(person_id=person_id, course=course, **fields))


class ContractPerson(Aggregate, aggregate_type="eventcore.contract.Person", snapshot_every=2):
    """An aggregate whose state (and so its snapshots) holds personal data."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.names: list[str] = []

    def enrol(self, course: str) -> None:
        """Record an enrolment with the suite's personal values."""
        self.record(enrolled(self.id, course).event)

    @apply
    def _enrolled(self, event: ContractEnrolled) -> None:
        self.names.append(event.name)

    def to_snapshot(self) -> Mapping[str, Any]:
        """The names seen so far."""
        return {"names": list(self.names)}

    def restore_snapshot(self, state: Mapping[str, Any]) -> None:
        """Restore the names."""
        self.names = list(state["names"])


class Directory(Projector, name="eventcore.contract.directory"):
    """A read model in a dict: each person's name; it purges a forgotten person."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.purged: list[str] = []

    @projects
    async def _enrolled(self, event: ContractEnrolled, context: ProjectionContext) -> None:
        self.names[event.person_id] = event.name

    @projects
    async def _forgotten(self, event: SubjectForgotten, context: ProjectionContext) -> None:
        self.names.pop(event.subject_id, None)
        self.purged.append(event.subject_id)


def new_keys(*key_ids: str) -> LocalKeyProvider:
    """A `LocalKeyProvider` with fresh keys of these ids (the first current)."""
    return LocalKeyProvider.from_text(",".join(LocalKeyProvider.generate(k) for k in key_ids))


class SwappableKeys:
    """A `KeyProvider` whose keys a test can replace (rotation, lost keys, outages).

    It starts with the keys of `text` (`id=base64key` entries).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.inner: KeyProvider = LocalKeyProvider.from_text(text)
        self.failing: str | None = None

    @property
    def current_key_id(self) -> str:
        """The inner provider's current key."""
        return self.inner.current_key_id

    async def wrap(self, data_key: bytes, associated_data: bytes) -> tuple[str, bytes]:
        """Wrap with the inner provider, unless `failing` says why it cannot."""
        if self.failing is not None:
            from eventcore import KeyProviderError

            raise KeyProviderError(self.failing)
        return await self.inner.wrap(data_key, associated_data)

    async def unwrap(self, key_id: str, wrapped: bytes, associated_data: bytes) -> bytes:
        """Unwrap with the inner provider."""
        return await self.inner.unwrap(key_id, wrapped, associated_data)


async def default_raw_text(store: EventStore) -> str:
    """Everything eventcore's own stores hold at rest, as text (every table, every row)."""
    if isinstance(store, InMemoryEventStore):
        parts = [repr(row) for row in store._log]
        parts += [repr(item) for item in store._snapshots._snapshots.values()]
        parts += [repr(item) for item in store._deadlines.values()]
        keys = store._personal.store if store._personal is not None else None
        parts += [repr(row) for row in getattr(keys, "raw_rows", list)()]
        return "\n".join(parts)
    if isinstance(store, SqlAlchemyEventStore):
        parts = []
        async with store.engine.connect() as conn:
            for table in store.tables.metadata.sorted_tables:
                for row in (await conn.execute(select(table))).all():
                    parts.append(repr(tuple(_text(value) for value in row)))
        return "\n".join(parts)
    raise NotImplementedError(
        f"PersonalDataContract cannot read what a {type(store).__name__} holds at rest: "
        "override its raw_text(store) hook"
    )


def _text(value: Any) -> Any:
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


def fresh_id(label: str) -> str:
    """A subject id no other test uses."""
    return f"{label}-{uuid.uuid4().hex[:8]}"
