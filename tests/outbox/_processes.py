"""Relay subprocesses (`_relay_process.py`) for the outbox fault tests: started on demand,
their stdout read as it comes, and all killed at the end."""

from __future__ import annotations

import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from subprocess import DEVNULL

import anyio
from anyio.abc import Process, TaskGroup

from eventcore.testing.pytest_plugin import postgres_url
from tests.outbox._brokers import BrokerNames
from tests.outbox._harness import until

RELAY_SCRIPT = Path(__file__).with_name("_relay_process.py")


class RelayProcess:
    """A relay subprocess and the lines it printed so far."""

    def __init__(self, name: str, process: Process, stderr: Path) -> None:
        self.name = name
        self.process = process
        self.stderr = stderr
        self.lines: list[str] = []

    @property
    def confirmed(self) -> int:
        """Messages the broker confirmed to this relay (as far as it reported)."""
        totals = [int(line.split()[1]) for line in self.lines if line.startswith("confirmed ")]
        return max(totals, default=0)

    @property
    def batches(self) -> int:
        """Publishes it started (as far as it reported)."""
        return sum(1 for line in self.lines if line.startswith("batch "))

    async def pump(self) -> None:
        """Collect its stdout lines until it exits."""
        assert self.process.stdout is not None
        partial = ""
        async for chunk in self.process.stdout:
            *complete, partial = (partial + chunk.decode()).split("\n")
            self.lines.extend(complete)

    async def printed(self, line: str, *, after: int = 0, seconds: float = 15) -> int:
        """Wait until it has printed a line starting with `line` at index `after` or
        later; return that line's index."""

        def found() -> int | None:
            for index in range(after, len(self.lines)):
                if self.lines[index].startswith(line):
                    return index
            return None

        def what() -> str:
            gone = "" if self.process.returncode is None else f" (exited {self.process.returncode})"
            return (
                f"relay {self.name}{gone} did not print {line!r}; last lines "
                f"{self.lines[-5:]}; stderr: {self.stderr.read_text()[-2000:]}"
            )

        await until(
            lambda: found() is not None or self.process.returncode is not None, seconds, what
        )
        index = found()
        if index is None:
            raise AssertionError(what())
        return index

    async def kill(self) -> None:
        """SIGKILL it and wait until it is gone."""
        self.process.send_signal(signal.SIGKILL)
        assert await self.process.wait() == -signal.SIGKILL


class RelayProcesses:
    """Starts relay processes on one store's schema and broker."""

    def __init__(self, group: TaskGroup, schema: str, broker: BrokerNames, tmp: Path) -> None:
        self._group = group
        self._schema = schema
        self._broker = broker
        self._tmp = tmp
        self.started: list[RelayProcess] = []

    async def spawn(self, name: str, *options: str) -> RelayProcess:
        """Start relay `name` (its relay id too) with extra command-line `options`."""
        command = [sys.executable, str(RELAY_SCRIPT), "--database", postgres_url()]
        command += ["--schema", self._schema, "--relay-id", name, *options]
        command += self._broker.relay_arguments()
        stderr = self._tmp / f"{name}.stderr"
        with stderr.open("wb") as err:
            process = await anyio.open_process(command, stdin=DEVNULL, stderr=err)
        relay = RelayProcess(name, process, stderr)
        self.started.append(relay)
        self._group.start_soon(relay.pump)
        return relay


@asynccontextmanager
async def relay_processes(
    schema: str, broker: BrokerNames, tmp: Path
) -> AsyncIterator[RelayProcesses]:
    """Relay processes on demand; whatever still runs at the end is killed."""
    started: list[RelayProcess] = []
    try:
        async with anyio.create_task_group() as group:
            processes = RelayProcesses(group, schema, broker, tmp)
            started = processes.started
            try:
                yield processes
            finally:
                with anyio.CancelScope(shield=True):
                    for relay in started:
                        if relay.process.returncode is None:
                            relay.process.kill()
                        await relay.process.wait()
            # the pumps end at the killed processes' end of output
    finally:
        with anyio.CancelScope(shield=True):
            for relay in started:
                await relay.process.aclose()
