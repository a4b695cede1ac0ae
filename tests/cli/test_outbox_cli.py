"""`eventcore outbox ...` and `eventcore inbox ...`, on SQLite and PostgreSQL.

The outbox is filled through the public API (a unit of work publishing, a relay on an
`InMemoryBroker` that may refuse a topic); the inbox's dead letters come from a real
`ConsumerWorker` whose consumers refuse every message.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import ClassVar

import anyio
import pytest
from click.testing import Result
from sqlalchemy import text

from eventcore import (
    Consumer,
    ConsumerContext,
    ConsumerWorker,
    InMemoryBroker,
    IntegrationEvent,
    OutboxRelay,
    OutboxStatus,
    SqlAlchemyEventStore,
    UnitOfWork,
    handles,
)
from eventcore.testing.pytest_plugin import (
    postgres_url,
    reachable_postgres_engine,
    throwaway_schema,
)
from tests.cli.test_cli import Database, assert_one_line_error, invoke

TOPIC = "cli_test.parcels"


class ParcelShipped(IntegrationEvent, type_name="cli_test.ParcelShipped", topic=TOPIC):
    """What the tests publish."""

    parcel: str


class Refusing(Consumer, name="cli_test.refusing", max_attempts=1):
    """Gives up on every message at its first failure."""

    @handles
    async def _shipped(self, event: ParcelShipped, context: ConsumerContext) -> None:
        raise RuntimeError(f"cannot take {event.parcel}")


class AlsoRefusing(Consumer, name="cli_test.also_refusing", max_attempts=1):
    """A second consumer, to filter by."""

    @handles
    async def _shipped(self, event: ParcelShipped, context: ConsumerContext) -> None:
        raise RuntimeError("not today")


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'outbox.db'}")


@pytest.fixture
def postgres_db() -> Iterator[Database]:
    """A throwaway schema, reached through a plain `postgresql://` URL."""

    async def check() -> None:
        await (await reachable_postgres_engine()).dispose()

    anyio.run(check)
    url = postgres_url().replace("postgresql+asyncpg://", "postgresql://", 1)
    database = Database(url, throwaway_schema())
    yield database

    async def drop(store: SqlAlchemyEventStore) -> None:
        async with store.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{database.schema}" CASCADE'))

    database.using(drop)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest) -> Database:
    """An empty event store (tables created) on each backend."""
    database: Database = request.getfixturevalue(f"{request.param}_db")

    async def create(store: SqlAlchemyEventStore) -> None:
        await store.create_schema()

    database.using(create)
    return database


def eventcore(db: Database, *args: str, input: str | None = None) -> Result:
    return invoke(db, *args, app=None, input=input)


def publish(db: Database, *parcels: str) -> list[uuid.UUID]:
    """One committed unit of work putting a message per parcel (its key) in the outbox."""

    async def write(store: SqlAlchemyEventStore) -> list[uuid.UUID]:
        async with UnitOfWork(store) as uow:
            ids = [uow.publish(ParcelShipped(parcel=p), key=p).message_id for p in parcels]
            await uow.commit()
        return ids

    return db.using(write)


def relay(db: Database, *, failing: bool = False, max_attempts: int = 10) -> InMemoryBroker:
    """Run a relay once over the outbox (the broker refusing the topic if `failing`)."""
    broker = InMemoryBroker()
    if failing:
        broker.failing.add(TOPIC)

    async def run(store: SqlAlchemyEventStore) -> None:
        relay = OutboxRelay(store, broker, max_attempts=max_attempts, backoff=600)
        await relay.publish_pending()

    db.using(run)
    return broker


def outbox_status(db: Database) -> OutboxStatus:
    async def load(store: SqlAlchemyEventStore) -> OutboxStatus:
        return await store.outbox.status()

    return db.using(load)


def claim_lanes(db: Database, relay_id: str, seconds: float) -> list[int]:
    async def claim(store: SqlAlchemyEventStore) -> list[int]:
        return await store.outbox.claim_lanes(relay_id, timedelta(seconds=seconds))

    return db.using(claim)


def columns(header: str) -> list[str]:
    """A table's column names (they may contain single spaces)."""
    return re.split(r"\s{2,}", header)


def ok(result: Result) -> list[str]:
    """The lines a successful command printed."""
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


# -- outbox status ---------------------------------------------------------------------


def test_status_of_an_empty_outbox(db: Database) -> None:
    assert ok(eventcore(db, "outbox", "status")) == [
        "PENDING  RETRYING  DEAD  SENT  OLDEST PENDING",
        "0        0         0     0     -",
        "",
        "no relay owns lanes (none has run, or all stopped)",
    ]


def test_status_counts_the_backlog_and_shows_who_owns_the_lanes(db: Database) -> None:
    publish(db, "a")
    relay(db)  # a: sent
    publish(db, "b")
    relay(db, failing=True, max_attempts=1)  # b: dead
    publish(db, "c")
    relay(db, failing=True)  # c: pending, retrying (in a long backoff)
    publish(db, "d")  # d: pending
    assert claim_lanes(db, "relay-a", 60) == list(range(32))
    assert claim_lanes(db, "relay-b", 60) == []
    assert len(claim_lanes(db, "relay-a", 60)) == 16  # a gives half up to b...
    assert claim_lanes(db, "relay-b", 60) == list(range(16, 32))
    db.using(lambda store: store.outbox.release_lanes("relay-b"))  # ...which stops,
    assert claim_lanes(db, "relay-c", -1) == list(range(16, 32))  # c's lease is over

    header, counts, blank, *lanes = ok(eventcore(db, "outbox", "status"))
    assert columns(header)[-1] == "OLDEST PENDING"
    assert counts.split()[:4] == ["2", "1", "1", "1"]
    assert re.fullmatch(r"\d+\.\ds", counts.split()[4])
    assert blank == ""
    assert [line.split()[:2] for line in lanes] == [
        ["RELAY", "LANES"],
        ["relay-a", "0-15"],
        ["relay-c", "16-31"],
    ]
    assert lanes[2].endswith("(expired)")
    assert not lanes[1].endswith("(expired)")

    found = json.loads(ok(eventcore(db, "outbox", "status", "--json"))[0])
    assert {k: found[k] for k in ("pending", "retrying", "dead", "sent")} == {
        "pending": 2, "retrying": 1, "dead": 1, "sent": 1,
    }  # fmt: skip
    assert found["oldest_pending_seconds"] >= 0
    relays = {r["relay_id"]: (r["lanes"], r["expired"]) for r in found["relays"]}
    assert relays == {"relay-a": (list(range(16)), False), "relay-c": (list(range(16, 32)), True)}
    assert found["unowned_lanes"] == []

    db.using(lambda store: store.outbox.release_lanes("relay-c"))
    *_, last = ok(eventcore(db, "outbox", "status"))
    assert last == "lanes without a relay: 16-31"


# -- outbox dead letters and redrive ---------------------------------------------------


def test_dead_letters_are_listed_then_redriven_and_published(db: Database) -> None:
    first, second = publish(db, "p-1", "p-2")
    relay(db, failing=True, max_attempts=1)

    header, *rows = ok(eventcore(db, "outbox", "dead-letters"))
    assert columns(header)[:4] == ["MESSAGE ID", "TOPIC", "KEY", "TYPE"]
    assert [row.split()[:5] for row in rows] == [
        [str(first), TOPIC, "p-1", "cli_test.ParcelShipped", "1"],
        [str(second), TOPIC, "p-2", "cli_test.ParcelShipped", "1"],
    ]
    assert rows[0].endswith(f"topic {TOPIC!r} is set to fail")
    assert len(ok(eventcore(db, "outbox", "dead-letters", "--limit", "1"))) == 2

    letters = [json.loads(line) for line in ok(eventcore(db, "outbox", "dead-letters", "--json"))]
    assert [(d["message_id"], d["payload"], d["attempts"]) for d in letters] == [
        (str(first), {"parcel": "p-1"}, 1),
        (str(second), {"parcel": "p-2"}, 1),
    ]
    assert letters[0]["dead_at"] is not None
    assert "set to fail" in letters[0]["last_error"]

    assert ok(eventcore(db, "outbox", "redrive", str(first))) == ["re-drove 1 messages"]
    status = outbox_status(db)
    assert (status.pending, status.dead) == (1, 1)
    assert [m.message_id for m in relay(db).published] == [first]

    unknown = eventcore(db, "outbox", "redrive", str(second), str(uuid.uuid4()))
    assert unknown.stdout == "re-drove 1 messages\n"
    assert_one_line_error(unknown, 1, "1 of the messages given are not dead in the outbox")
    assert ok(eventcore(db, "outbox", "redrive", "--all")) == ["re-drove 0 messages"]
    assert ok(eventcore(db, "outbox", "dead-letters")) == ["no dead messages in the outbox"]


def test_redrive_all(sqlite_db: Database) -> None:
    sqlite_db.using(lambda store: store.create_schema())
    publish(sqlite_db, "p-1", "p-2", "p-3")
    relay(sqlite_db, failing=True, max_attempts=1)
    assert ok(eventcore(sqlite_db, "outbox", "redrive", "--all")) == ["re-drove 3 messages"]
    assert outbox_status(sqlite_db).pending == 3


def test_redrive_needs_ids_or_all_but_not_both(sqlite_db: Database) -> None:
    neither = eventcore(sqlite_db, "outbox", "redrive")
    assert_one_line_error(neither, 2, "give the MESSAGE_IDs to re-drive, or --all (not both)")
    both = eventcore(sqlite_db, "outbox", "redrive", "--all", str(uuid.uuid4()))
    assert_one_line_error(both, 2, "or --all (not both)")
    not_an_id = eventcore(sqlite_db, "outbox", "redrive", "p-1")
    assert_one_line_error(not_an_id, 2, "'p-1' is not a valid UUID")


# -- outbox purge ----------------------------------------------------------------------


def test_purge_asks_then_deletes_sent_and_with_dead_the_dead(db: Database) -> None:
    publish(db, "s-1", "s-2")
    relay(db)
    publish(db, "dead")
    relay(db, failing=True, max_attempts=1)
    publish(db, "pending")

    declined = eventcore(db, "outbox", "purge", input="n\n")
    assert declined.exit_code == 1
    assert declined.stdout.startswith("Delete 2 sent messages from the outbox? [y/N]")
    assert outbox_status(db).sent == 2

    assert ok(eventcore(db, "outbox", "purge", "--yes")) == ["deleted 2 messages from the outbox"]
    status = outbox_status(db)
    assert (status.pending, status.dead, status.sent) == (1, 1, 0)
    assert ok(eventcore(db, "outbox", "purge")) == ["deleted 0 messages from the outbox"]

    dead = eventcore(db, "outbox", "purge", "--dead", input="y\n")
    assert dead.exit_code == 0, dead.output
    assert dead.stdout.startswith("Delete 0 sent and 1 dead messages from the outbox?")
    assert dead.stdout.endswith("deleted 1 messages from the outbox\n")
    status = outbox_status(db)
    assert (status.pending, status.dead, status.sent) == (1, 0, 0)  # pending is kept


# -- inbox -----------------------------------------------------------------------------


def consume(db: Database, messages: int, *consumers: Consumer) -> None:
    """Relay the outbox to a queue per consumer; each consumer handles `messages` of it."""
    broker = InMemoryBroker()
    queues = [broker.queue(type(c).name) for c in consumers]

    async def run(store: SqlAlchemyEventStore) -> None:
        assert await OutboxRelay(store, broker).publish_pending() == messages
        for consumer, queue in zip(consumers, queues, strict=True):
            worker = ConsumerWorker(store, consumer, queue)
            async with queue.deliveries() as deliveries:
                for _ in range(messages):
                    await worker.handle(await anext(deliveries))

    db.using(run)


def inbox_dead(db: Database, consumer: str) -> list[uuid.UUID]:
    async def load(store: SqlAlchemyEventStore) -> list[uuid.UUID]:
        return [d.message.message_id for d in await store.inbox.dead_letters(consumer)]

    return db.using(load)


def test_inbox_dead_letters_are_listed_and_discarded(db: Database) -> None:
    first, second = publish(db, "p-1", "p-2")
    consume(db, 2, Refusing(), AlsoRefusing())

    header, *rows = ok(eventcore(db, "inbox", "dead-letters"))
    assert columns(header)[:3] == ["CONSUMER", "MESSAGE ID", "TOPIC"]
    assert sorted(row.split()[:6] for row in rows) == sorted(
        [name, str(m), TOPIC, key, "cli_test.ParcelShipped", "1"]
        for name in ("cli_test.refusing", "cli_test.also_refusing")
        for m, key in ((first, "p-1"), (second, "p-2"))
    )
    mine = ok(eventcore(db, "inbox", "dead-letters", "--consumer", "cli_test.refusing"))
    assert [row.split()[1] for row in mine[1:]] == [str(first), str(second)]
    assert mine[1].endswith("RuntimeError('cannot take p-1')")

    as_json = eventcore(
        db, "inbox", "dead-letters", "--consumer", "cli_test.also_refusing", "--json"
    )
    letters = [json.loads(line) for line in ok(as_json)]
    assert [(d["consumer"], d["message_id"], d["payload"]) for d in letters] == [
        ("cli_test.also_refusing", str(first), {"parcel": "p-1"}),
        ("cli_test.also_refusing", str(second), {"parcel": "p-2"}),
    ]
    assert letters[0]["attempts"] == 1
    assert "not today" in letters[0]["error"]

    discarded = eventcore(db, "inbox", "discard", "cli_test.refusing", str(first))
    assert ok(discarded) == ["discarded 1 dead letters of cli_test.refusing"]
    assert inbox_dead(db, "cli_test.refusing") == [second]
    assert inbox_dead(db, "cli_test.also_refusing") == [first, second]  # the other's stay

    again = eventcore(db, "inbox", "discard", "cli_test.refusing", str(first), str(second))
    assert again.stdout == "discarded 1 dead letters of cli_test.refusing\n"
    assert_one_line_error(again, 1, "1 of the messages given are not dead letters of")
    assert inbox_dead(db, "cli_test.refusing") == []
    none = eventcore(db, "inbox", "dead-letters", "--consumer", "cli_test.refusing")
    assert ok(none) == ["no dead letters in the inbox"]


class Flaky(Consumer, name="cli_test.flaky", max_attempts=1):
    """Refuses the parcels in `refuse` (until they are taken out of it)."""

    refuse: ClassVar[set[str]] = set()
    taken: ClassVar[list[str]] = []

    @handles
    async def _shipped(self, event: ParcelShipped, context: ConsumerContext) -> None:
        if event.parcel in self.refuse:
            raise RuntimeError(f"not yet {event.parcel}")
        self.taken.append(event.parcel)


def test_inbox_replay_hands_the_consumer_its_dead_letters(db: Database) -> None:
    first, second = publish(db, "p-1", "p-2")
    Flaky.refuse, Flaky.taken = {"p-1", "p-2"}, []
    consume(db, 2, Flaky())
    spec = f"{__name__}:Flaky"

    Flaky.refuse = {"p-2"}  # p-1's cause is fixed
    partly = eventcore(db, "inbox", "replay", "--consumer", spec, "--all")
    assert partly.stdout == "replayed 1 dead letters of cli_test.flaky\n"
    assert f"{second}: RuntimeError('not yet p-2')" in partly.stderr
    assert_one_line_error(partly, 1, "some messages were not handled (see above)")
    assert inbox_dead(db, "cli_test.flaky") == [second]

    Flaky.refuse = set()
    done = eventcore(db, "inbox", "replay", "--consumer", spec, str(second), str(first))
    assert done.stdout == "replayed 1 dead letters of cli_test.flaky\n"
    assert f"not dead letters of cli_test.flaky: {first}" in done.stderr
    assert done.exit_code == 1
    assert inbox_dead(db, "cli_test.flaky") == []
    assert Flaky.taken == ["p-1", "p-2"]


def test_inbox_replay_needs_a_consumer_and_ids_or_all(sqlite_db: Database) -> None:
    spec = f"{__name__}:Flaky"
    neither = eventcore(sqlite_db, "inbox", "replay", "--consumer", spec)
    assert_one_line_error(neither, 2, "give the MESSAGE_IDs to replay, or --all")
    both = eventcore(sqlite_db, "inbox", "replay", "--consumer", spec, "--all", str(uuid.uuid4()))
    assert_one_line_error(both, 2, "give the MESSAGE_IDs to replay, or --all")
    wrong = eventcore(sqlite_db, "inbox", "replay", "--consumer", f"{__name__}:TOPIC", "--all")
    assert_one_line_error(wrong, 1, "must give a Consumer", "'cli_test.parcels'")
    failing = eventcore(
        sqlite_db, "inbox", "replay", "--consumer", f"{__name__}:ParcelShipped", "--all"
    )
    assert_one_line_error(failing, 1, "calling it failed: 1 validation error for ParcelShipped")


def test_inbox_discard_needs_message_ids(sqlite_db: Database) -> None:
    missing = eventcore(sqlite_db, "inbox", "discard", "cli_test.refusing")
    assert_one_line_error(missing, 2, "Missing argument 'MESSAGE_ID...'")


def test_the_commands_fail_in_one_line_without_tables(sqlite_db: Database) -> None:
    Path(sqlite_db.url.split(":///", 1)[1]).touch()  # a database, without the tables
    for command in (["outbox", "status"], ["outbox", "dead-letters"], ["inbox", "dead-letters"]):
        assert_one_line_error(eventcore(sqlite_db, *command), 1, "no event store tables")
