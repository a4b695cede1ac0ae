"""The outbox fault tests' bounded contexts: ledgers publish numbered entries; a consumer
writes one read-model row per entry it handles.

Each ledger (a partition key) numbers its entries 1, 2, 3, ...; the integration event
carries `(key, n)`, so the consumer's side can check that nothing was lost, nothing
applied twice, and each key's entries arrived in order.
"""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, Column, Identity, MetaData, String, Table, Uuid, insert

from eventcore import (
    Aggregate,
    Consumer,
    ConsumerContext,
    DomainEvent,
    IntegrationEvent,
    IntegrationMapping,
    RecordedEvent,
    SqlAlchemyEventStore,
    UnitOfWork,
    apply,
    handles,
    translates,
)

Entry = tuple[str, int]
"""A committed entry: `(key, n)`."""


class EntryRecorded(DomainEvent, type_name="tests.outbox.EntryRecorded"):
    """Private domain event: the ledger's next entry."""

    amount: int


class Sequenced(IntegrationEvent, type_name="tests.outbox.Sequenced", topic="tests.outbox"):
    """The public contract: entry `n` of ledger `key`."""

    key: str
    n: int


def sequenced_on(topic: str) -> type[Sequenced]:
    """`Sequenced` published to `topic` (each test has its own broker topic; consumers
    find the handler by the type name, which stays the same)."""
    return type(
        "Sequenced",
        (Sequenced,),
        {"__module__": __name__},
        type_name=Sequenced.integration_type_name,
        topic=topic,
    )


class Ledger(Aggregate, aggregate_type="tests.outbox.Ledger"):
    """A ledger whose entries are numbered by its stream version."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.entries = 0

    def record_entry(self, amount: int) -> None:
        """Record the next entry."""
        self.record(EntryRecorded(amount=amount))

    @apply
    def _recorded(self, event: EntryRecorded) -> None:
        self.entries += 1


class LedgerContract(IntegrationMapping):
    """Publishes every entry as a `Sequenced` (partition key: the ledger id)."""

    def __init__(self, event_class: type[Sequenced]) -> None:
        self.event_class = event_class

    @translates
    def _recorded(self, event: EntryRecorded, recorded: RecordedEvent) -> Sequenced:
        return self.event_class(key=recorded.stream_id, n=recorded.version)


async def record_entries(
    store: SqlAlchemyEventStore, contract: LedgerContract, key: str, count: int = 1
) -> list[Entry]:
    """The command: add `count` entries to ledger `key` in one unit of work, which
    also puts their messages in the outbox. Returns the entries committed."""
    async with UnitOfWork(store, mappings=[contract]) as uow:
        repository = uow.repository(Ledger)
        if await store.stream_version(key):
            ledger = await repository.get(key)
        else:
            ledger = Ledger(key)
            await repository.add(ledger)
        first = ledger.version + 1
        for _ in range(count):
            ledger.record_entry(amount=1)
        await uow.commit()
    return [(key, n) for n in range(first, first + count)]


def effects_table(schema: str) -> Table:
    """The consumer's read model: one row per handled message, in handling order (no
    unique key, so a message applied twice would show as two rows)."""
    return Table(
        "outbox_effects",
        MetaData(),
        Column("seq", BigInteger(), Identity(), primary_key=True),
        Column("message_id", Uuid(), nullable=False),
        Column("key", String(255), nullable=False),
        Column("n", BigInteger(), nullable=False),
        schema=schema,
    )


class EffectsConsumer(Consumer, name="tests.outbox.effects", max_attempts=3):
    """Writes a row of `effects_table` per `Sequenced`, in the consumer's transaction."""

    def __init__(self, table: Table) -> None:
        self.table = table

    @handles
    async def _sequenced(self, event: Sequenced, context: ConsumerContext) -> None:
        row = {"message_id": context.message.message_id, "key": event.key, "n": event.n}
        await context.connection.execute(insert(self.table).values(row))


def entry_of(payload: bytes) -> Entry:
    """The `(key, n)` a message's payload carries."""
    event = Sequenced.model_validate_json(payload)
    return event.key, event.n


def new_suffix() -> str:
    """A fresh suffix for one test's queue, stream and topic names."""
    return uuid.uuid4().hex[:10]
