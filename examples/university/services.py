"""The long-running pieces, each runnable as its own process.

- `run_relay`: registration's outbox relay, publishing its integration events;
- `run_registration`: registration's workers: its projections, the waitlist process,
  and the consumer of records' integration events (the student directory);
- `run_records`: the records context's consumer, keeping the enrolments.

Both run until cancelled, or until SIGINT/SIGTERM (`serve`), and then stop cleanly: the
relay gives up its outbox lanes, the consumer's unsettled messages go back to the broker.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable

import anyio

from eventcore import BrokerConnectionError, ConsumerWorker
from university import records as records_context
from university import registration as registration_context
from university.settings import Settings

__all__ = ["run_records", "run_registration", "run_relay", "serve"]

_log = logging.getLogger("university")

RECONNECT_DELAY = 2.0
"""Seconds between attempts to reach the broker again after the connection dropped."""


async def serve(service: Callable[[], Awaitable[None]]) -> None:
    """Run `service` until it returns or the process gets SIGINT or SIGTERM."""
    async with anyio.create_task_group() as group:

        async def stop_on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    _log.info("%s: stopping", signal.Signals(signum).name)
                    group.cancel_scope.cancel()
                    return

        group.start_soon(stop_on_signal)
        await service()
        group.cancel_scope.cancel()


async def run_relay(settings: Settings) -> None:
    """Publish registration's outbox through the settings' broker, until cancelled."""
    database_url = _required(settings)
    broker = settings.broker()
    async with await registration_context.bootstrap(
        database_url, schema=settings.schema
    ) as registration:
        publisher = broker.publisher(registration.topics)
        try:
            relay = registration.relay(publisher)
            where = broker.describe()
            _log.info("relay %s: publishing registration's outbox to %s", relay.relay_id, where)
            await relay.run()
        finally:
            await publisher.close()


async def run_registration(settings: Settings) -> None:
    """Run registration's projections and waitlist process, and consume records' events
    into its student directory, until cancelled."""
    database_url = _required(settings)
    broker = settings.broker()
    async with await registration_context.bootstrap(
        database_url, schema=settings.schema
    ) as registration:
        await broker.subscribe(registration.subscription)
        source = broker.source(registration.subscription)
        try:
            topics = ", ".join(registration.subscription.topics)
            _log.info(
                "registration: workers running; consuming %s from %s", topics, broker.describe()
            )
            async with anyio.create_task_group() as group:
                group.start_soon(registration.run_workers)
                await _consume("registration", registration.records_worker(source))
                group.cancel_scope.cancel()
        finally:
            await source.close()


async def run_records(settings: Settings) -> None:
    """Consume registration's contracts into the records context, until cancelled.

    When the broker connection drops, consuming starts again after `RECONNECT_DELAY`.
    """
    database_url = _required(settings)
    broker = settings.broker()
    async with await records_context.bootstrap(database_url, schema=settings.schema) as records:
        await broker.subscribe(records.subscription)  # keep messages for it from now on
        source = broker.source(records.subscription)
        try:
            worker = records.worker(source)
            topics = ", ".join(records.subscription.topics)
            _log.info("records: consuming %s from %s", topics, broker.describe())
            await _consume("records", worker)
        finally:
            await source.close()


async def _consume(name: str, worker: ConsumerWorker) -> None:
    while True:
        try:
            await worker.run()
            return
        except BrokerConnectionError as error:
            _log.warning("%s: %s; reconnecting in %g s", name, error, RECONNECT_DELAY)
            await anyio.sleep(RECONNECT_DELAY)


def _required(settings: Settings) -> str:
    if settings.database_url is None or settings.in_process_broker:
        raise ValueError(
            "a service needs a database and a broker other processes share: set "
            "UNIVERSITY_DATABASE_URL and UNIVERSITY_BROKER_URL (or --database-url, --broker-url)"
        )
    return settings.database_url
