"""The command line: `python -m university [demo|relay|records] [options]`.

- `demo` (the default): the demo, on a throwaway SQLite file with an in-memory broker
  unless told otherwise; the relay and the records consumer run in the same process,
  or elsewhere with `--external`.
- `relay`: registration's outbox relay, as a service of its own.
- `registration`: registration's workers (projections, the waitlist process, the consumer
  of records' events), as a service of its own.
- `records`: the records context's consumer, as a service of its own.

`--database-url` and `--broker-url` override `UNIVERSITY_DATABASE_URL` and
`UNIVERSITY_BROKER_URL` (see `university.settings`).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import anyio

from eventcore import EventcoreError
from university.demo import run_demo
from university.services import run_records, run_registration, run_relay, serve
from university.settings import Settings

__all__ = ["main"]

COMMANDS = ("demo", "relay", "registration", "records")
DESCRIPTION = (
    "A seeded term, a registration rush on one section, drops and swaps; "
    "the records context follows through the outbox."
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; return the process exit status (0 on success)."""
    parser = _parser()
    args = parser.parse_args(_with_command(sys.argv[1:] if argv is None else argv))
    settings = Settings.from_environment(database_url=args.database_url, broker_url=args.broker_url)
    separate = args.command != "demo" or args.external
    if separate and (settings.database_url is None or settings.in_process_broker):
        parser.error(
            f"{args.command} with services in other processes needs a database and a broker "
            "they share: set UNIVERSITY_DATABASE_URL and UNIVERSITY_BROKER_URL (or pass "
            "--database-url and --broker-url)"
        )
    try:
        if args.command == "demo":
            return 0 if _demo(settings, external=args.external) else 1
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        services = {"relay": run_relay, "registration": run_registration, "records": run_records}
        service = services[args.command]
        anyio.run(serve, lambda: service(settings))
    except BaseException as error:
        found = _operational(error)
        if found is None:
            raise
        print(f"university {args.command}: {_one_line(found)}", file=sys.stderr)
        return 1
    return 0


def _operational(error: BaseException) -> BaseException | None:
    """The database or broker error in `error` (looking inside task groups), if any:
    reported in one line, not a traceback (it is not a bug to debug)."""
    if isinstance(error, BaseExceptionGroup):
        inner = [_operational(e) for e in error.exceptions]
        return next((e for e in inner if e is not None), None)
    return error if isinstance(error, EventcoreError | OSError) else None


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if isinstance(error, EventcoreError) else f"{type(error).__name__}: {text}"


def _demo(settings: Settings, *, external: bool) -> bool:
    if settings.database_url is not None:
        return anyio.run(lambda: run_demo(settings, external=external))
    with tempfile.TemporaryDirectory(prefix="university-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'university.db'}"
        return anyio.run(lambda: run_demo(settings.with_database(url)))


def _with_command(argv: Sequence[str]) -> list[str]:
    """`argv`, with `demo` first if no command is given (`university --database-url ...`)."""
    args = list(argv)
    if args and (args[0] in COMMANDS or args[0] in ("-h", "--help")):
        return args
    return ["demo", *args]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="university", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)
    helps = {
        "demo": "run the demo (default); relay and records in this process unless --external",
        "relay": "publish registration's outbox to the broker, until stopped",
        "registration": "run registration's projections and waitlist process, and consume "
        "records' events, until stopped",
        "records": "consume registration's contracts into the records context, until stopped",
    }
    for name in COMMANDS:
        command = commands.add_parser(name, help=helps[name], description=helps[name])
        command.add_argument(
            "--database-url",
            help="SQLite or PostgreSQL URL (env UNIVERSITY_DATABASE_URL; "
            "default for the demo: a throwaway SQLite file)",
        )
        command.add_argument(
            "--broker-url",
            help="amqp://... or nats://... (env UNIVERSITY_BROKER_URL; default: in memory)",
        )
        if name == "demo":
            command.add_argument(
                "--external",
                action="store_true",
                help="the relay and records run as their own processes",
            )
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
