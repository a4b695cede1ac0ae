"""Benchmark eventcore against a raw asyncpg baseline on the same PostgreSQL server.

```
python benchmarks/run.py [--quick] [--only NAME,...] [--json PATH]
```

The server comes from `EVENTCORE_BENCH_POSTGRES_URL` (default
`postgresql+asyncpg://postgres@127.0.0.1:5432/test`). Both sides work in throwaway schemas
that are dropped afterwards. The outbox relay scenarios also publish to RabbitMQ
(`EVENTCORE_BENCH_RABBITMQ_URL`) and NATS (`EVENTCORE_BENCH_NATS_URL`), against a raw
client loop; they are skipped when their broker cannot be reached. A missed target is
reported, never an error exit. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

import _http_scenario  # noqa: F401  (registers http_command)
import _pii_scenarios  # noqa: F401  (registers the personal data scenarios)
import _projection_scenarios  # noqa: F401  (registers the projection scenarios)
import _relay_scenarios  # noqa: F401  (registers the outbox relay scenarios)
from _harness import Outcome, open_bench
from _scenarios import SCENARIOS, warm_up

URL_ENV = "EVENTCORE_BENCH_POSTGRES_URL"
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
_WIDTHS = (24, 14, 14, 6, 12)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    scenarios = "\n".join(f"  {s.name:<24} {s.summary}" for s in SCENARIOS.values())
    parser = argparse.ArgumentParser(
        description="Benchmark eventcore against raw asyncpg on the same PostgreSQL server.",
        epilog=f"scenarios:\n{scenarios}\n\nserver: ${URL_ENV} (default {DEFAULT_URL})",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small workloads (under a minute)")
    parser.add_argument(
        "--only", metavar="NAME,...", help=f"scenarios to run: {', '.join(SCENARIOS)}"
    )
    parser.add_argument("--json", metavar="PATH", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if args.only:
        unknown = set(args.only.split(",")) - set(SCENARIOS)
        if unknown:
            parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    return args


def _row(*cells: str) -> str:
    first, *rest = cells
    return f"{first:<{_WIDTHS[0]}}" + "".join(
        f"  {cell:>{width}}" for cell, width in zip(rest, _WIDTHS[1:], strict=False)
    )


def _print_outcome(outcome: Outcome) -> None:
    print(_row(outcome.scenario, *outcome.cells()), flush=True)
    for note in outcome.notes():
        print(f"    {note}", flush=True)


async def _run(names: list[str], *, quick: bool, url: str) -> list[Outcome]:
    rounds = 5 if quick else 9
    print(f"eventcore vs raw asyncpg on {url} ({'quick' if quick else 'full'}, {rounds} rounds)")
    print(_row("scenario", "eventcore", "raw", "ratio", "target"))
    outcomes = []
    async with open_bench(url, quick=quick, rounds=rounds) as bench:
        await warm_up(bench)
        for name in names:
            outcome = await SCENARIOS[name].run(bench)
            _print_outcome(outcome)
            outcomes.append(outcome)
    return outcomes


def main(argv: list[str] | None = None) -> None:
    """Run the benchmarks, print the table, and write the JSON if asked to."""
    args = _parse(argv)
    names = args.only.split(",") if args.only else list(SCENARIOS)
    names = [name for name in SCENARIOS if name in names]  # registry order
    url = os.environ.get(URL_ENV, DEFAULT_URL)
    start = time.perf_counter()
    outcomes = asyncio.run(_run(names, quick=args.quick, url=url))
    print(f"done in {time.perf_counter() - start:.0f} s")
    if args.json:
        args.json.write_text(json.dumps([o.as_json() for o in outcomes], indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
