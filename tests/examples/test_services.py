"""The contexts as separate services over PostgreSQL and a real broker: the README's recipe.

`university records`, `university registration` and `university relay` run as processes
of their own; the demo runs here with `external=True` and must see records match
registration; a student records admits, published to the broker, must reach
registration's directory through the registration service.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process
from sqlalchemy import text

from eventcore import message_for
from eventcore.testing.pytest_plugin import (
    postgres_url,
    reachable_postgres_engine,
    throwaway_schema,
)
from university import records as records_context
from university import registration as registration_context
from university.demo import run_demo
from university.messaging import Broker, NatsBroker, RabbitMqBroker
from university.records import Records
from university.records import contracts as records_contracts
from university.records.contracts import StudentAdmitted
from university.registration import Registration
from university.settings import BROKER_URL, DATABASE_SCHEMA, DATABASE_URL, NAMESPACE, Settings

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

SERVICES = ("records", "registration", "relay")


@pytest.mark.parametrize(
    "broker_name",
    [
        pytest.param("rabbitmq", marks=pytest.mark.rabbitmq),
        pytest.param("nats", marks=pytest.mark.nats),
    ],
)
async def test_relay_and_records_run_as_their_own_processes(
    broker_name: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broker_url: str = request.getfixturevalue(f"{broker_name}_url")
    engine = await reachable_postgres_engine()
    schema, namespace = throwaway_schema(), f"university-test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        DATABASE_URL: postgres_url(),
        BROKER_URL: broker_url,
        DATABASE_SCHEMA: schema,
        NAMESPACE: namespace,
    }
    settings = Settings.from_environment(env)
    broker = settings.broker()
    try:
        # As a deployment would: tables (migrations) and the queue exist before traffic.
        async with await registration_context.bootstrap(engine, schema=schema) as registration:
            await records_context.bootstrap(engine, schema=schema)
            await broker.subscribe(Records.subscription)
            await broker.subscribe(Registration.subscription)
            services = [await _service(name, env, tmp_path) for name in SERVICES]
            try:
                with anyio.fail_after(60):
                    matched = await run_demo(settings, external=True, catch_up_timeout=30)
                    learnt = await _records_reach_registration(broker, registration)
            finally:
                codes = await _stop(services)
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()
        await _delete(broker)

    out = capsys.readouterr().out
    logs = {name: (tmp_path / f"{name}.log").read_text() for name in SERVICES}
    assert matched, (out, logs)
    assert learnt, logs["registration"]
    assert "records: 40 students enrolled in " in out
    assert "matching registration." in out
    assert codes == [0, 0, 0], logs  # SIGTERM stops them cleanly
    assert "Traceback" not in "".join(logs.values())
    assert "SIGTERM: stopping" in logs["relay"]


async def _records_reach_registration(broker: Broker, registration: Registration) -> bool:
    """A student records admits, published to the broker, reaches the registration service."""
    admitted = StudentAdmitted(
        student_id="late-1",
        level="graduate",
        program="CS",
        earned_credits=130,
        revision=1,
        occurred_at=datetime.now(UTC),
    )
    publisher = broker.publisher(records_contracts.TOPICS)
    try:
        await publisher.publish([message_for(admitted, key="late-1")])
    finally:
        await publisher.close()
    with anyio.move_on_after(30):
        while True:
            async with registration.store.engine.connect() as conn:
                if await registration.directory.record_of(conn, "late-1") is not None:
                    return True
            await anyio.sleep(0.05)
    return False


async def _service(name: str, env: dict[str, str], logs: Path) -> Process:
    log = (logs / f"{name}.log").open("w")
    try:
        return await anyio.open_process(
            [sys.executable, "-m", "university", name], env=env, stdout=log, stderr=log
        )
    finally:
        log.close()  # the child holds its own descriptor


async def _stop(services: list[Process]) -> list[int | None]:
    """SIGTERM each service and return its exit code; kill it if it does not stop in time."""
    for process in services:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    for process in services:
        with anyio.move_on_after(15):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
            return [None] * len(services)  # did not stop cleanly
    return [process.returncode for process in services]


async def _delete(broker: Broker) -> None:
    """Delete what the test made on the broker: the queue and exchange, or the stream."""
    if isinstance(broker, RabbitMqBroker):
        from eventcore.rabbitmq import delete_exchange, delete_queue

        await delete_queue(broker.url, broker.queue_name(Records.subscription))
        await delete_queue(broker.url, broker.queue_name(Registration.subscription))
        await delete_exchange(broker.url, broker.exchange)
    elif isinstance(broker, NatsBroker):
        import nats

        client = await nats.connect(broker.url)
        try:
            await client.jetstream().delete_stream(broker.stream)
        finally:
            await client.close()
