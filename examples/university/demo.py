"""The demo: a seeded term under a registration rush, and records following through the outbox.

Registration's part is the tour (`university.tour`): seed a term, let students of every
priority group register for one section at the same moment, drop, swap, and read the
audit trail and the past back. Every seat taken or given up is also an integration
event in registration's outbox; the relay publishes them and the records context
consumes them, until records lists exactly the students registration seated.
"""

from __future__ import annotations

import anyio
from sqlalchemy import make_url

from university import records as records_context
from university import registration as registration_context
from university.messaging import Broker
from university.records import Records
from university.registration import Registration
from university.settings import Settings
from university.tour import Tour, run_tour

__all__ = ["run_demo"]


async def run_demo(
    settings: Settings,
    *,
    external: bool = False,
    catch_up_timeout: float = 30.0,
    students: int = 3000,
) -> bool:
    """Run the demo, printing what happens; return whether records matched registration.

    `settings.database_url` must be set. With `external`, the relay and the records
    consumer are other processes (`university relay`, `university records`); otherwise
    they run here, in a task group that ends with the demo. Registration's own workers
    (projections, the waitlist process) run here either way.
    """
    if settings.database_url is None:
        raise ValueError("run_demo needs settings.database_url")
    url, schema = settings.database_url, settings.schema
    broker = settings.broker()
    print(f"University on {make_url(url).render_as_string()}, messages through {broker.describe()}")
    async with (
        await registration_context.bootstrap(url, schema=schema) as registration,
        await records_context.bootstrap(url, schema=schema) as records,
    ):
        if external:
            async with anyio.create_task_group() as workers:
                workers.start_soon(registration.run_workers)
                tour = await run_tour(registration, students=students)
                matched = await _caught_up(records, tour, catch_up_timeout)
                workers.cancel_scope.cancel()
            return matched
        return await _in_one_process(broker, registration, records, catch_up_timeout, students)


async def _in_one_process(
    broker: Broker,
    registration: Registration,
    records: Records,
    catch_up_timeout: float,
    students: int,
) -> bool:
    """Run the relay, the records consumer and registration's workers beside the tour."""
    await broker.subscribe(records.subscription)  # keep what is published from now on
    publisher = broker.publisher(registration.topics)
    source = broker.source(records.subscription)
    relay, worker = registration.relay(publisher), records.worker(source)
    try:
        async with anyio.create_task_group() as services:
            services.start_soon(relay.run)
            services.start_soon(worker.run)
            services.start_soon(registration.run_workers)
            tour = await run_tour(registration, students=students)
            matched = await _caught_up(records, tour, catch_up_timeout)
            services.cancel_scope.cancel()  # the relay records its last batch as it stops
        print(
            f"Outbox relay published {relay.metrics.published} messages; records "
            f"handled {worker.handled}, skipped {worker.duplicates} duplicates."
        )
    finally:
        await publisher.close()
        await source.close()
    return matched


async def _caught_up(records: Records, tour: Tour, timeout: float) -> bool:
    """Wait (at most `timeout` s) until records lists the students registration seated."""
    expected = sorted(tour.enrolled)
    listed = await records.class_list(tour.section_id)
    with anyio.move_on_after(timeout):
        while listed != expected:
            await anyio.sleep(0.02)
            listed = await records.class_list(tour.section_id)
    if listed != expected:
        print(
            f"records: {len(listed)} students enrolled in {tour.section_id} after {timeout:g} s, "
            f"registration seated {len(expected)}: is `university records` running?"
        )
        return False
    print(f"records: {len(listed)} students enrolled in {tour.section_id}, matching registration.")
    left, joined = [
        await _standing(records, s, tour.section_id) for s in (tour.dropped, tour.promoted)
    ]
    print(f"records: {tour.dropped} {left}, {tour.promoted} {joined}.")
    return True


async def _standing(records: Records, student_id: str, section_id: str) -> str:
    for enrolment in await records.enrolments_of(student_id):
        if enrolment.section_id == section_id:
            return f"{enrolment.standing} (as of v{enrolment.sequence})"
    return "unknown"
