"""`http_command`: requests/s of an HTTP command endpoint, eventcore.fastapi vs raw asyncpg.

Both sides serve `POST /carts/{cart_id}/items` (load the cart, add an item, commit) from
their own uvicorn process with the same settings (`_http_apps`), on a pool of the same
size, and are driven by the same client in this process: `_CONNECTIONS` keep-alive
connections, each sending its requests one after the other, each on carts of its own
(no conflicts), fresh carts every round. The client is a minimal HTTP/1.1 loop on asyncio
streams, so that the servers, not the client, are what is measured. Latency is from
writing a request to reading its whole response.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from _harness import Bench, Outcome, alternate, median
from _model import ITEM_ADDED, Cart, item_dicts, item_events
from _scenarios import scenario
from eventcore import NewEvent

__all__ = ["HttpCommand", "http_command"]

_CONNECTIONS = 16
_CARTS_PER_CONNECTION = 4
_POOL = 8  # database connections of each server (the same on both sides, no overflow)
_MIN_RATIO = 0.70
_APPS = Path(__file__).with_name("_http_apps.py")


@dataclass(frozen=True)
class HttpCommand:
    """Requests/s of each side, their ratio, and each side's p50 and p99 latency."""

    scenario: str
    eventcore_per_s: float
    raw_per_s: float
    ratio: float
    p50_ms: dict[str, float]
    p99_ms: dict[str, float]
    requests: int
    target: float = _MIN_RATIO

    @property
    def met(self) -> bool:
        """Whether the ratio reached the target."""
        return self.ratio >= self.target

    def cells(self) -> tuple[str, str, str, str]:
        """Table cells (see `Outcome.cells`)."""
        verdict = "PASS" if self.met else "MISS"
        return (f"{self.eventcore_per_s:,.0f}/s", f"{self.raw_per_s:,.0f}/s",
                f"{self.ratio:.2f}", f">= {self.target:.2f} {verdict}")  # fmt: skip

    def notes(self) -> list[str]:
        """The latencies, and what a round is."""
        ec, raw = self.p99_ms["eventcore"], self.p99_ms["raw"]
        return [
            f"p99 eventcore {ec:.1f} ms, raw {raw:.1f} ms; p50 eventcore "
            f"{self.p50_ms['eventcore']:.1f} ms, raw {self.p50_ms['raw']:.1f} ms",
            f"{self.requests:,} requests per round on {_CONNECTIONS} keep-alive connections, "
            f"{_POOL} database connections per server; uvicorn (1 process, uvloop, "
            "httptools) on loopback for each side",
        ]

    def as_json(self) -> dict[str, object]:
        """The JSON object of this result."""
        return {
            "scenario": self.scenario,
            "eventcore_per_s": round(self.eventcore_per_s, 1),
            "raw_per_s": round(self.raw_per_s, 1),
            "ratio": round(self.ratio, 3),
            "target": self.target,
            "met": self.met,
            "p50_ms": {k: round(v, 2) for k, v in self.p50_ms.items()},
            "p99_ms": {k: round(v, 2) for k, v in self.p99_ms.items()},
            "requests_per_round": self.requests,
            "connections": _CONNECTIONS,
            "pool": _POOL,
        }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def _server(side: str, url: str, schema: str) -> Iterator[int]:
    port = _free_port()
    here = str(_APPS.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
    args = [sys.executable, str(_APPS), side, url, schema, str(port), str(_POOL)]
    process = subprocess.Popen(args, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the {side} server did not start") from None
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


async def _connection(port: int, carts: list[str], count: int, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for n in range(count):
            body = f'{{"i":{n}}}'.encode()
            request = (
                f"POST /carts/{carts[n % len(carts)]}/items HTTP/1.1\r\nHost: bench\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            started = time.perf_counter()
            writer.write(request)
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not status.startswith(b"HTTP/1.1 201"):
                raise SystemExit(f"the server answered {status!r}")
    finally:
        writer.close()
        await writer.wait_closed()


@scenario("http_command")
async def http_command(bench: Bench) -> Outcome:
    """An HTTP command endpoint (load, record, commit) via eventcore.fastapi vs raw asyncpg."""
    per_connection = bench.size(quick=60, full=250)
    url = bench.engine.url.render_as_string(hide_password=False)
    latencies: dict[str, list[float]] = {"eventcore": [], "raw": []}

    async def carts(side: str) -> list[str]:
        """Fresh carts, each with one event (untimed)."""
        ids = bench.stream_ids(f"http-{side}", _CONNECTIONS * _CARTS_PER_CONNECTION)
        if side == "eventcore":
            for cart in ids:
                [event] = item_events(0, 1)
                await bench.store.append(
                    cart, [NewEvent.of(event)], stream_type=Cart.aggregate_type
                )
        else:
            async with bench.pool.acquire() as conn:
                for cart in ids:
                    await bench.raw.append_one(conn, cart, 1, ITEM_ADDED, item_dicts(0, 1)[0])
        return ids

    def side(name: str, port: int) -> Callable[[], Awaitable[float]]:
        async def round_() -> float:
            ids = await carts(name)
            found: list[float] = []
            k = _CARTS_PER_CONNECTION
            started = time.perf_counter()
            await asyncio.gather(*(
                _connection(port, ids[c * k : (c + 1) * k], per_connection, found)
                for c in range(_CONNECTIONS)
            ))  # fmt: skip
            rate = len(found) / (time.perf_counter() - started)
            latencies[name].extend(found)
            return rate

        return round_

    ec_schema = bench.store.tables.schema or "public"
    with (
        _server("eventcore", url, ec_schema) as ec_port,
        _server("raw", url, bench.raw.schema) as raw_port,
    ):
        ec_rates, raw_rates = await alternate([side("eventcore", ec_port), side("raw", raw_port)],
                                              bench.rounds)  # fmt: skip
    ratios = [e / r for e, r in zip(ec_rates, raw_rates, strict=True)]

    def cut(name: str, percent: int) -> float:
        return 1000 * statistics.quantiles(latencies[name], n=100, method="inclusive")[percent - 1]

    return HttpCommand(
        "http_command",
        median(ec_rates),
        median(raw_rates),
        median(ratios),
        {name: cut(name, 50) for name in latencies},
        {name: cut(name, 99) for name in latencies},
        per_connection * _CONNECTIONS,
    )
