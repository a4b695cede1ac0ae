"""The personal data scenarios: events with three encrypted fields against the same
events stored in clear, both through eventcore, in one run.

Both sides get a schema of their own (dropped afterwards) on the same server: the
sealed side's store has a key provider, the plain side's has none, and their events
carry the same values (the plain class has the same fields, unmarked). Each subject
has a stream of its own, as a person's record would.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated

from _harness import Bench, Outcome, Throughput, alternate, median, per_second
from _scenarios import scenario
from eventcore import (
    Aggregate,
    DataSubjectId,
    DomainEvent,
    EventStoreTables,
    LocalKeyProvider,
    NewEvent,
    PersonalData,
    Repository,
    SqlAlchemyEventStore,
    apply,
)

__all__ = ["append_pii", "load_pii"]

_PER_STREAM = 10  # events per subject's stream in append_pii (as in append_single)
_LOAD_STREAMS = 20  # subjects loaded per round in load_pii
_LOAD_LENGTH = 50  # events per subject's stream in load_pii


class StudentNoted(DomainEvent, type_name="benchmarks.StudentNoted"):
    """A record event with three personal fields (sealed on the PII side)."""

    student_id: Annotated[str, DataSubjectId()]
    name: Annotated[str, PersonalData()]
    email: Annotated[str, PersonalData()]
    phone: Annotated[str, PersonalData(group="contact")]
    course: str
    credits: int


class PlainStudentNoted(DomainEvent, type_name="benchmarks.PlainStudentNoted"):
    """The same fields, unmarked: stored in clear."""

    student_id: str
    name: str
    email: str
    phone: str
    course: str
    credits: int


class Student(Aggregate, aggregate_type="benchmarks.Student"):
    """A student's record: the latest contact details and the credits so far."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.name = self.email = self.phone = ""
        self.credits = 0

    @apply
    def _noted(self, event: StudentNoted) -> None:
        self.name, self.email, self.phone = event.name, event.email, event.phone
        self.credits += event.credits


class PlainStudent(Student, aggregate_type="benchmarks.PlainStudent"):
    """The same record, from the events in clear."""

    @apply
    def _plain(self, event: PlainStudentNoted) -> None:
        self.name, self.email, self.phone = event.name, event.email, event.phone
        self.credits += event.credits


def _fields(student: str, i: int) -> dict[str, object]:
    return {
        "student_id": student,
        "name": f"Student Number {i % 97}",
        "email": f"student{i % 97}@university.example",
        "phone": f"+44 20 7946 {i % 10_000:04d}",
        "course": f"cs{100 + i % 40}",
        "credits": 5 + i % 10,
    }


@asynccontextmanager
async def _sides(bench: Bench) -> AsyncIterator[tuple[SqlAlchemyEventStore, SqlAlchemyEventStore]]:
    suffix = uuid.uuid4().hex[:8]
    keys = LocalKeyProvider.from_text(LocalKeyProvider.generate("bench"))
    sealed = SqlAlchemyEventStore(
        bench.engine, tables=EventStoreTables(schema=f"bench_pii_{suffix}"), key_provider=keys
    )
    plain = SqlAlchemyEventStore(
        bench.engine, tables=EventStoreTables(schema=f"bench_clr_{suffix}")
    )
    try:
        for store in (sealed, plain):
            await store.create_schema()
        yield sealed, plain
    finally:
        async with bench.pool.acquire() as conn:
            for store in (sealed, plain):
                await conn.execute(f'DROP SCHEMA IF EXISTS "{store.tables.schema}" CASCADE')
        for store in (sealed, plain):
            await store.close()


Make = Callable[[str, int], DomainEvent]


def _sealed_event(student: str, i: int) -> DomainEvent:
    return StudentNoted(**_fields(student, i))


def _plain_event(student: str, i: int) -> DomainEvent:
    return PlainStudentNoted(**_fields(student, i))


async def _appends(store: SqlAlchemyEventStore, streams: list[str], make: Make) -> None:
    """One append (one transaction) per event, each subject's stream in turn."""
    for stream in streams:
        for version in range(_PER_STREAM):
            event = NewEvent.of(make(stream, version))
            await store.append(stream, [event], expected_version=version)


@scenario("append_pii")
async def append_pii(bench: Bench) -> Outcome:
    """Appends of events with 3 encrypted fields vs the same in clear (new subjects)."""
    events = bench.size(quick=500, full=3000)
    count = events // _PER_STREAM
    async with _sides(bench) as (sealed, plain):

        async def ec() -> float:
            streams = bench.stream_ids("pii", count)
            return await per_second(events, _appends(sealed, streams, _sealed_event))

        async def clear() -> float:
            streams = bench.stream_ids("clr", count)
            return await per_second(events, _appends(plain, streams, _plain_event))

        ec_rates, clear_rates = await alternate([ec, clear], bench.rounds)
    return Throughput.from_rounds(
        "append_pii",
        ec_rates,
        clear_rates,
        0.60,
        remarks=(
            "raw column: eventcore without encryption; one event per append, a new "
            f"subject (two data keys created) every {_PER_STREAM} events",
        ),
    )


@scenario("load_pii")
async def load_pii(bench: Bench) -> Outcome:
    """Loads of students (Repository.get) from events with 3 encrypted fields vs in clear."""
    rounds_of = bench.size(quick=3, full=10)
    async with _sides(bench) as (sealed, plain):
        sides: list[tuple[Repository[Student], list[str]]] = []
        for store, make, kind in (
            (sealed, _sealed_event, Student),
            (plain, _plain_event, PlainStudent),
        ):
            streams = bench.stream_ids(kind.aggregate_type, _LOAD_STREAMS)
            for stream in streams:
                events = [NewEvent.of(make(stream, i)) for i in range(_LOAD_LENGTH)]
                await store.append(stream, events, stream_type=kind.aggregate_type)
            sides.append((Repository(kind, store), streams))

        def run(
            students: Repository[Student], streams: list[str]
        ) -> Callable[[], Awaitable[float]]:
            async def work() -> None:
                for _ in range(rounds_of):
                    for stream in streams:
                        student = await students.get(stream)
                        assert student.version == _LOAD_LENGTH

            async def go() -> float:
                return await per_second(rounds_of * _LOAD_STREAMS * _LOAD_LENGTH, work())

            return go

        ec_rates, clear_rates = await alternate([run(*sides[0]), run(*sides[1])], bench.rounds)
    sealed_us, clear_us = 1e6 / median(ec_rates), 1e6 / median(clear_rates)
    return Throughput.from_rounds(
        "load_pii",
        ec_rates,
        clear_rates,
        0.60,
        extras={"sealed_us_per_event": sealed_us, "clear_us_per_event": clear_us},
        remarks=(
            f"per event: {sealed_us:.1f} us sealed, {clear_us:.1f} us in clear "
            f"(+{sealed_us - clear_us:.1f} us: three decryptions, a larger payload)",
            f"raw column: eventcore without encryption; Repository.get of {_LOAD_STREAMS} "
            f"students of {_LOAD_LENGTH} events each (keys cached after the warm-up)",
        ),
    )
