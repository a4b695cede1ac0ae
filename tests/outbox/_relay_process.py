"""An outbox relay process for the outbox fault tests (run with `sys.executable`).

It builds a PostgreSQL store on `--database` / `--schema` and a RabbitMQ (`--exchange`)
or NATS (`--stream`, `--subject`) publisher on `--broker-url`, and runs
`OutboxRelay.run` until killed. It reports on stdout, one line at a time: `started`,
then `batch <size>` before each publish and `confirmed <total>` after it (the messages
the broker confirmed so far). `--delay` seconds pass before and after each publish, so
a batch takes a while, as real ones do: a kill then lands inside one.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import anyio

from eventcore import (
    EventStoreTables,
    Message,
    OutboxRelay,
    Publisher,
    PublishResult,
    SqlAlchemyEventStore,
    postgres_engine,
)


def say(line: str) -> None:
    """Report one line to the test, at once."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class ReportingPublisher:
    """Announces each batch and the running total of confirmed messages."""

    def __init__(self, inner: Publisher, delay: float) -> None:
        self._inner = inner
        self._delay = delay
        self.confirmed = 0

    async def publish(self, messages: Sequence[Message]) -> PublishResult:
        """Publish through the inner publisher, slowly, telling stdout."""
        say(f"batch {len(messages)}")
        await anyio.sleep(self._delay)
        failures = await self._inner.publish(messages)
        self.confirmed += len(messages) - len(failures)
        say(f"confirmed {self.confirmed}")
        await anyio.sleep(self._delay)
        return failures

    async def close(self) -> None:
        """Close the inner publisher."""
        await self._inner.close()


def publisher(options: argparse.Namespace) -> Publisher:
    """The broker's publisher, as the options say."""
    if options.broker == "rabbitmq":
        from eventcore.rabbitmq import RabbitMqPublisher

        return RabbitMqPublisher(options.broker_url, exchange=options.exchange)
    from eventcore.nats import NatsPublisher

    return NatsPublisher(options.broker_url, stream=options.stream, subjects=[options.subject])


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--relay-id", required=True)
    parser.add_argument("--broker", choices=["rabbitmq", "nats"], required=True)
    parser.add_argument("--broker-url", required=True)
    parser.add_argument("--exchange")
    parser.add_argument("--stream")
    parser.add_argument("--subject")
    parser.add_argument("--lease", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--delay", type=float, default=0.0)
    return parser.parse_args(argv)


async def main(argv: Sequence[str]) -> None:
    """Run the relay until killed."""
    options = parse(argv)
    engine = postgres_engine(options.database, pool_size=2, max_overflow=2)
    store = SqlAlchemyEventStore(engine, tables=EventStoreTables(schema=options.schema))
    relay = OutboxRelay(
        store,
        ReportingPublisher(publisher(options), options.delay),
        batch_size=options.batch_size,
        lease=options.lease,
        backoff=0.1,
        max_backoff=0.5,
        poll_interval=0.1,
        relay_id=options.relay_id,
    )
    say("started")
    try:
        await relay.run()
    finally:
        await engine.dispose()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1:])
