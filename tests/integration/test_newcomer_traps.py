"""What a newcomer walks into: adding an aggregate twice, and the engine helpers' URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventcore import (
    Aggregate,
    AggregateExistsError,
    DomainEvent,
    EventStore,
    ExpectedVersion,
    NewEvent,
    Repository,
    SqlAlchemyEventStore,
    UnitOfWork,
    UnsupportedBackendError,
    WrongExpectedVersionError,
    apply,
    postgres_engine,
    sqlite_engine,
)

pytestmark = pytest.mark.anyio


class Opened(DomainEvent, type_name="test_newcomer_traps.Opened"):
    """A counter was opened."""


class Counter(Aggregate, aggregate_type="test_newcomer_traps.Counter"):
    """Counts nothing in particular."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.opened = False

    @classmethod
    def open(cls, id: str) -> Counter:
        """A new counter."""
        counter = cls(id)
        counter.record(Opened())
        return counter

    @apply
    def _opened(self, event: Opened) -> None:
        self.opened = True


async def test_adding_an_existing_aggregate_says_it_exists(any_store: EventStore) -> None:
    counters = Repository(Counter, any_store)
    await counters.add(Counter.open("c-1"))
    with pytest.raises(AggregateExistsError) as caught:
        await counters.add(Counter.open("c-1"))
    error = caught.value
    assert isinstance(error, WrongExpectedVersionError)
    assert (error.aggregate_type, error.aggregate_id, error.stream_id) == (
        "test_newcomer_traps.Counter",
        "c-1",
        "c-1",
    )
    assert (error.expected, error.actual) == (0, 1)
    assert "test_newcomer_traps.Counter 'c-1' exists already (at version 1)" in str(error)
    assert "get()" in str(error)
    assert "save()" in str(error)
    assert len(await any_store.read_stream("c-1")) == 1  # nothing was written


async def test_adding_an_existing_aggregate_in_a_unit_of_work(any_store: EventStore) -> None:
    await Repository(Counter, any_store).add(Counter.open("c-1"))
    async with UnitOfWork(any_store) as uow:
        await uow.repository(Counter).add(Counter.open("c-2"))
        await uow.repository(Counter).add(Counter.open("c-1"))
        with pytest.raises(AggregateExistsError, match="'c-1' exists already"):
            await uow.commit()
    assert await any_store.stream_version("c-2") == 0  # all or nothing


@pytest.mark.parametrize("expected", [0, ExpectedVersion.NO_STREAM])
async def test_a_conflict_on_a_new_stream_says_the_stream_exists(
    any_store: EventStore, expected: int | ExpectedVersion
) -> None:
    await any_store.append("c-1", [NewEvent.of(Opened())])
    with pytest.raises(WrongExpectedVersionError) as caught:
        await any_store.append("c-1", [NewEvent.of(Opened())], expected_version=expected)
    message = str(caught.value)
    assert "stream 'c-1' exists already (at version 1)" in message
    assert "Repository.get()" in message


async def test_other_conflicts_keep_their_message(any_store: EventStore) -> None:
    await any_store.append("c-1", [NewEvent.of(Opened())])
    with pytest.raises(WrongExpectedVersionError, match="expected version 3, actual version 1"):
        await any_store.append("c-1", [NewEvent.of(Opened())], expected_version=3)


@pytest.mark.parametrize(
    "spelling", ["{path}", "sqlite:///{path}", "sqlite+aiosqlite:///{path}", "sqlite:///{rel}"]
)
async def test_sqlite_engine_takes_a_path_or_a_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    monkeypatch.chdir(tmp_path)
    engine = sqlite_engine(spelling.format(path=tmp_path / "events.db", rel="events.db"))
    store = SqlAlchemyEventStore(engine)
    try:
        await store.create_schema()
        await store.append("c-1", [NewEvent.of(Opened())])
    finally:
        await engine.dispose()
    assert (tmp_path / "events.db").is_file()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite+aiosqlite://", ":memory:"])
async def test_sqlite_engine_in_memory(url: str) -> None:
    engine = sqlite_engine(url)
    try:
        await SqlAlchemyEventStore(engine).create_schema()
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("sqlite://events.db", "write sqlite:///events.db"),
        ("postgresql://localhost/app", "use postgres_engine()"),
        ("mysql+aiomysql://localhost/app", "not a mysql+aiomysql:// URL"),
    ],
)
def test_sqlite_engine_refuses_other_urls(url: str, says: str) -> None:
    with pytest.raises(UnsupportedBackendError, match=says.replace("+", r"\+")):
        sqlite_engine(url)


@pytest.mark.parametrize(
    "url",
    [
        "mysql+aiomysql://user@localhost/app",
        "sqlite:///events.db",
        "localhost:5432/app",
        "postgresql+psycopg://user:secret@localhost/app",
    ],
)
def test_postgres_engine_refuses_other_schemes(url: str) -> None:
    with pytest.raises(UnsupportedBackendError, match="needs a postgresql://") as caught:
        postgres_engine(url)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(
    "url", ["postgresql://u@h/db", "postgres://u@h/db", "postgresql+asyncpg://u@h/db"]
)
def test_postgres_engine_takes_postgresql_urls(url: str) -> None:
    engine = postgres_engine(url)
    assert engine.url.drivername == "postgresql+asyncpg"
