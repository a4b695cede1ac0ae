"""Running a service's in-process workers under the app's task group, and stopping them.

A worker is anything with `async run()` that runs until cancelled: a
`ProjectionWorker`, a `ProcessManagerWorker`, an `OutboxRelay`, a `ConsumerWorker`.
They start in the order given and stop in the reverse order, one at a time, within a
grace period shared by all: cancelling one runs its own clean-up (a relay hands its
lanes back, a consumer's source returns the messages it had not settled). A worker
that fails is logged and reported by the liveness check; the others go on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import anyio
import anyio.abc

__all__ = ["Supervisor", "Worker", "WorkerState"]

_log = logging.getLogger("eventcore.fastapi")


class Worker(Protocol):
    """Something that works until cancelled (projection workers, relays, consumers)."""

    async def run(self) -> None:
        """Work until cancelled."""
        ...


@dataclass
class WorkerState:
    """One worker under supervision."""

    name: str
    worker: Worker
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    done: anyio.Event = field(default_factory=anyio.Event)
    error: str | None = None
    """Why the worker stopped on its own (it failed), if it did."""


class Supervisor:
    """Starts workers in a task group and stops them in order within `grace` seconds."""

    def __init__(self, workers: Sequence[Worker], grace: float) -> None:
        self._workers = list(workers)
        self._grace = grace
        self.states: list[WorkerState] = []

    def start(self, group: anyio.abc.TaskGroup) -> None:
        """Start every worker in `group`."""
        names: dict[str, int] = {}
        self.states = []
        for worker in self._workers:
            base = type(worker).__name__
            names[base] = names.get(base, 0) + 1
            name = base if names[base] == 1 else f"{base}-{names[base]}"
            state = WorkerState(name, worker)
            self.states.append(state)
            group.start_soon(self._run, state, name=f"eventcore worker {name}")

    async def _run(self, state: WorkerState) -> None:
        try:
            with state.scope:
                await state.worker.run()
            if not state.scope.cancel_called:
                state.error = "stopped by itself"
                _log.error("worker %s stopped by itself", state.name)
        except Exception as error:
            state.error = f"{type(error).__name__}: {error}"
            _log.exception("worker %s failed", state.name)
        finally:
            state.done.set()

    @property
    def failed(self) -> dict[str, str]:
        """The workers that stopped on their own, and why."""
        return {s.name: s.error for s in self.states if s.error is not None}

    async def stop(self) -> None:
        """Cancel the workers one by one, the last started first, within the grace period.

        Once the grace period is spent, the ones still running are all cancelled at
        once (their clean-up is bounded by themselves).
        """
        with anyio.CancelScope(shield=True):
            deadline = anyio.current_time() + self._grace
            pending = list(reversed(self.states))
            while pending:
                state = pending.pop(0)
                state.scope.cancel()
                with anyio.move_on_after(max(deadline - anyio.current_time(), 0)):
                    await state.done.wait()
                if not state.done.is_set():
                    _log.warning("worker %s did not stop within the grace period", state.name)
                    for rest in pending:
                        rest.scope.cancel()
                    break
