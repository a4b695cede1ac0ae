"""Hot sections: many students register for a few sections at the same moment.

```
python benchmarks/hot_sections.py [--database sqlite|postgres] [--students 300]
                                  [--sections 5] [--seats 30] [--waitlist 10]
                                  [--mode optimistic|serialised|locked] [--rounds 3]
                                  [--instances 1]
```

Every student sends one `RegisterForSection` to one of the sections (round robin), all
at once (an anyio task group). The figures: conflicts per decided command (each
conflict is a reload and a second decision), how long the burst took, and the check
that matters: no section has more students than seats or more waiting than its
waitlist's room, and the read of every stream agrees with the decisions.

Modes: `optimistic` lets the commands race (each conflict retried with backoff);
`serialised` queues one section's commands in the process (the default of
`university.registration.bootstrap`); `locked` adds PostgreSQL advisory locks (for
several processes). `--instances 2` sends the commands round robin to two contexts on the
same tables, each with its own gate, as two service instances would have. PostgreSQL
comes from `EVENTCORE_BENCH_POSTGRES_URL` (default
`postgresql+asyncpg://postgres@127.0.0.1:5432/test`), in a throwaway schema.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path

import anyio
from sqlalchemy import text

from eventcore import message_for, postgres_engine
from university.records.contracts import StudentAdmitted
from university.registration import Registration, bootstrap
from university.registration.application.commands import (
    CatalogueCourse,
    OfferSection,
    RegisterForSection,
    ScheduleTerm,
)
from university.registration.domain.requests import Enrolled, Refused, Waitlisted
from university.registration.domain.values import Meeting, TimeTicket, Weekday

URL_ENV = "EVENTCORE_BENCH_POSTGRES_URL"
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
TERM = "HOT"


async def _prepare(registration: Registration, args: argparse.Namespace) -> list[str]:
    now = datetime.now(UTC)
    await registration.schedule_term(
        ScheduleTerm(
            term_id=TERM,
            name="Hot",
            starts_on=date(2030, 1, 1),
            ends_on=date(2030, 5, 1),
            time_tickets=[TimeTicket(group="everyone", opens_at=now - timedelta(days=1))],
            add_deadline=now + timedelta(days=7),
            drop_deadline=now + timedelta(days=14),
        )
    )
    courses = [f"HOT{n}" for n in range(args.sections)]
    await registration.catalogue_courses(
        [CatalogueCourse(course_id=c, title=c, department="HOT", credits=3) for c in courses]
    )
    sections = [f"{TERM}-{c}-01" for c in courses]
    await registration.offer_sections(
        [
            OfferSection(
                section_id=s,
                term_id=TERM,
                course_id=c,
                capacity=args.seats,
                waitlist_capacity=args.waitlist,
                meetings=[
                    Meeting(
                        days=(Weekday.MO,), starts=clock_time(8 + n), ends=clock_time(8 + n, 50)
                    )
                ],
            )
            for n, (s, c) in enumerate(zip(sections, courses, strict=True))
        ]
    )
    admitted = [
        message_for(
            StudentAdmitted(
                student_id=f"h{n:04d}",
                level="undergraduate",
                program="HOT",
                earned_credits=60,
                revision=1,
                occurred_at=now,
            ),
            key=f"h{n:04d}",
        )
        for n in range(args.students)
    ]
    await registration.ingest_records(admitted)
    return sections


async def _burst(
    instances: list[Registration], sections: list[str], students: int
) -> tuple[Counter[str], list[float]]:
    """Every student's command at once, round robin over the instances; the outcomes and
    each command's latency (seconds)."""
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []

    async def register(n: int) -> None:
        command = RegisterForSection(TERM, f"h{n:04d}", sections[n % len(sections)])
        started = time.perf_counter()
        outcome = (await instances[n % len(instances)].register(command)).outcome
        latencies.append(time.perf_counter() - started)
        outcomes[type(outcome).__name__] += 1

    async with anyio.create_task_group() as group:
        for n in range(students):
            group.start_soon(register, n)
    return outcomes, latencies


async def _check(registration: Registration, sections: list[str], seats: int, room: int) -> int:
    """How many sections broke their limits (0 expected)."""
    broken = 0
    for section_id in sections:
        state = await registration.queries.section_as_of(section_id)
        if len(state.enrolled) > seats or len(state.waitlist) > room:
            broken += 1
        if set(state.enrolled) & set(state.waitlist):
            broken += 1
    return broken


async def _round(args: argparse.Namespace, url: str | None, tmp: Path, n: int) -> dict[str, float]:
    options = {
        "serialise": args.mode != "optimistic",
        "database_locks": args.mode == "locked",
    }
    if url is None:
        target: object = f"sqlite+aiosqlite:///{tmp / f'hot-{n}.db'}"
        registration = await bootstrap(str(target), **options)
        schema = None
    else:
        engine = postgres_engine(url, pool_size=20, max_overflow=30)
        schema = f"hot_{uuid.uuid4().hex[:10]}"
        registration = await bootstrap(engine, schema=schema, **options)
    store = registration.store
    instances = [registration] + [
        await bootstrap(store.engine, schema=schema, create_tables=False, **options)
        for _ in range(args.instances - 1)
    ]  # each with its own gate, as separate service instances would have
    try:
        sections = await _prepare(registration, args)
        started = time.perf_counter()
        outcomes, latencies = await _burst(instances, sections, args.students)
        seconds = time.perf_counter() - started
        broken = await _check(registration, sections, args.seats, args.waitlist)
        conflicts = sum(i.metrics.conflicts for i in instances)
        decided = sum(i.metrics.decided for i in instances)
        latencies.sort()
        return {
            "seconds": seconds,
            "p50": latencies[len(latencies) // 2],
            "p99": latencies[int(len(latencies) * 0.99)],
            "conflicts": conflicts,
            "decided": decided,
            "per_decision": conflicts / decided,
            "enrolled": outcomes[Enrolled.__name__],
            "waitlisted": outcomes[Waitlisted.__name__],
            "refused": outcomes[Refused.__name__],
            "broken": broken,
        }
    finally:
        if schema is not None:
            async with registration.store.engine.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            await registration.store.engine.dispose()
        else:
            await registration.aclose()


async def _main(args: argparse.Namespace) -> None:
    url = os.environ.get(URL_ENV, DEFAULT_URL) if args.database == "postgres" else None
    print(
        f"{args.students} students, {args.sections} sections of {args.seats} seats "
        f"(waitlist {args.waitlist}), {args.database}, mode {args.mode}, "
        f"{args.instances} instance(s)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        results = [await _round(args, url, Path(tmp), n) for n in range(args.rounds)]
    for r in results:
        print(
            f"  {r['seconds']:6.2f} s (p50 {r['p50'] * 1000:5.0f} ms, "
            f"p99 {r['p99'] * 1000:5.0f} ms)"
            f"  conflicts {r['conflicts']:5.0f} "
            f"({r['per_decision']:.2f} per decision)  enrolled {r['enrolled']:.0f} "
            f"waitlisted {r['waitlisted']:.0f} refused {r['refused']:.0f}  "
            f"limits broken {r['broken']:.0f}"
        )
    print(
        f"median: {statistics.median(r['seconds'] for r in results):.2f} s, "
        f"{statistics.median(r['per_decision'] for r in results):.2f} conflicts per decision"
    )


def main() -> None:
    """Parse the options and run the rounds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--students", type=int, default=300)
    parser.add_argument("--sections", type=int, default=5)
    parser.add_argument("--seats", type=int, default=30)
    parser.add_argument("--waitlist", type=int, default=10)
    parser.add_argument(
        "--mode", choices=("optimistic", "serialised", "locked"), default="serialised"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--instances", type=int, default=1, help="contexts, each with its own gate (as processes)"
    )
    anyio.run(_main, parser.parse_args())


if __name__ == "__main__":
    main()
