"""`ProcessManagerWorker`: runs process managers from the log, and fires their deadlines."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import anyio

from eventcore._application._following import follow_under_lease, single_failure
from eventcore._application._horizon import wait_until_readable
from eventcore._application._process_manager import ProcessBatch, ProcessContext, ProcessManager
from eventcore._application._projection_status import (
    ProjectionStatus,
    checkpoint_status,
)
from eventcore._application._subscription import Subscription
from eventcore._application._unit_of_work import UnitOfWork
from eventcore._domain._integration import IntegrationMapping
from eventcore._domain._metadata import LogPosition, RecordedEvent, caused_by
from eventcore._exceptions import LeaseLostError, ProcessManagerError
from eventcore._persistence._leases import ProjectionLease, ProjectionLeases, leases_for
from eventcore._persistence._store import EventStore

__all__ = ["BatchLock", "ProcessManagerWorker"]

BatchLock = Callable[[Sequence[RecordedEvent]], AbstractAsyncContextManager[object]]
"""Gives the context manager a worker holds around one attempt at a batch of events."""

_READABLE_WITHIN = 60.0  # seconds catch_up() waits for transactions open on the server
_log = logging.getLogger("eventcore.processes")


class ProcessManagerWorker:
    """Runs process managers: each follows the log from its checkpoint; deadlines fire.

    For each batch of events a manager reacts to, the worker opens one
    [`UnitOfWork`][eventcore.UnitOfWork]: it loads (or creates) the instances the
    events are for, runs their reactions, and commits, in one transaction, the
    instances' new events, the commands' events on other aggregates, the scheduled
    deadlines and the manager's checkpoint (`"process:{name}"`). So a batch takes
    effect once: a crash or a failure before the commit leaves nothing behind, and
    the batch is delivered again. A batch that fails (a conflict on a commanded
    aggregate, say) is retried `retries` times with exponential backoff from
    `retry_delay`; then the worker stops with a
    [`ProcessManagerError`][eventcore.ProcessManagerError].

    `batch_lock`, if given, is entered around each attempt at a batch (before its
    unit of work opens, left after it commits or rolls back), with the batch's events:
    the way to make a batch take its turn with commands that serialise on the same
    streams inside the process, instead of racing them (and losing, on a busy stream).

    `mappings` are the batch's unit of work's: the events the reactions cause that an
    [`IntegrationMapping`][eventcore.IntegrationMapping] translates are put in the
    outbox in the same transaction, as a command handler's would be.

    Next to the managers, `run()` fires the due deadlines every `deadline_interval`
    seconds ([`fire_deadlines`][eventcore.EventStore.fire_deadlines]). Several workers
    may run: each manager is active in one of them at a time, the one holding its
    lease (as for [`ProjectionWorker`][eventcore.ProjectionWorker]), and deadlines are
    never fired twice.

    ```python
    worker = ProcessManagerWorker(store, [RegistrationProcess])
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)  # catch up, then follow the log live
    ```
    """

    def __init__(
        self,
        store: EventStore,
        managers: Sequence[type[ProcessManager]],
        *,
        batch_size: int = 100,
        retries: int = 3,
        retry_delay: float = 0.05,
        max_wait: float = 1.0,
        deadline_interval: float = 1.0,
        leases: ProjectionLeases | None = None,
        lease_retry: float = 1.0,
        mappings: Sequence[IntegrationMapping] = (),
        batch_lock: BatchLock | None = None,
    ) -> None:
        for manager in managers:
            _check(manager)
        names = [m.name for m in managers]
        if len(set(names)) != len(names):
            raise ProcessManagerError(f"process manager names must be unique, got {names}")
        self._store = store
        self.managers = list(managers)
        self._batch_size = batch_size
        self._retries = retries
        self._retry_delay = retry_delay
        self._max_wait = max_wait
        self._deadline_interval = deadline_interval
        self._leases = leases if leases is not None else leases_for(store)
        self._lease_retry = lease_retry
        self._mappings = list(mappings)
        self._batch_lock = batch_lock
        self._held: dict[str, _Held] = {}  # the lease and checkpoint of running managers

    @staticmethod
    def checkpoint_name(manager: type[ProcessManager]) -> str:
        """The name of `manager`'s checkpoint (and lease): `"process:{name}"`."""
        return f"process:{manager.name}"

    async def status(self) -> list[ProjectionStatus]:
        """The checkpoint and lag of each manager (named by its checkpoint, `process:{name}`).

        Lag is the age of the oldest event a manager reacts to that it has not
        processed yet: the figure to alert on.
        """
        head = await self._store.log_head()
        return [
            await checkpoint_status(self._store, self.checkpoint_name(m), m.event_types(), head)
            for m in self.managers
        ]

    async def run(self) -> None:
        """Follow the log with every manager, and fire deadlines, until cancelled.

        Raises [`ProcessManagerError`][eventcore.ProcessManagerError] when a manager
        gives up on a batch (the others are stopped too).
        """
        with single_failure():  # a ProcessManagerError is a ProjectionError
            async with anyio.create_task_group() as group:
                group.start_soon(self._fire_deadlines_forever)
                for manager in self.managers:
                    group.start_soon(self._follow, manager)

    async def catch_up(self) -> int:
        """Fire the due deadlines and process every event committed so far; return how many.

        Goes on until nothing is left, so reactions to the events that reactions (or
        deadlines) cause are included. Managers another worker holds the lease of are
        left to it. For tests and scripts; an application runs `run()`.
        """
        processed = 0
        while True:
            await self._fire_due_deadlines()
            await wait_until_readable(self._store, timeout=_READABLE_WITHIN)
            done = 0
            for manager in self.managers:
                done += await self._catch_up(manager)
            processed += done
            if done == 0:
                return processed

    async def _catch_up(self, manager: type[ProcessManager]) -> int:
        done = 0
        async with self._leases.hold(self.checkpoint_name(manager)) as lease:
            if lease is not None:
                async with self._holding(manager, lease) as batches:
                    while batch := await batches.read():
                        await self._handle_with_retries(manager, batch)
                        done += len(batch)
        return done

    async def _follow(self, manager: type[ProcessManager]) -> None:
        """Run `manager` while this process holds its lease; else (or once lost) retry."""

        async def follow(lease: ProjectionLease) -> None:
            async with self._holding(manager, lease) as batches:
                async for batch in batches:
                    await self._handle_with_retries(manager, batch)

        key = self.checkpoint_name(manager)
        await follow_under_lease(self._leases, key, follow, retry=self._lease_retry)

    async def _fire_deadlines_forever(self) -> None:
        while True:
            try:
                await self._fire_due_deadlines()
            except Exception as error:  # the database is away, say: try again later
                _log.warning("firing deadlines failed: %r", error)
            await anyio.sleep(self._deadline_interval)

    async def _fire_due_deadlines(self) -> None:
        while await self._store.fire_deadlines(limit=self._batch_size) == self._batch_size:
            pass

    @asynccontextmanager
    async def _holding(
        self, manager: type[ProcessManager], lease: ProjectionLease
    ) -> AsyncIterator[Subscription]:
        """Subscribe from the checkpoint; batches are guarded by `lease` meanwhile."""
        name = self.checkpoint_name(manager)
        checkpoint = (await self._store.load_checkpoints([name])).get(name, LogPosition())
        self._held[name] = _Held(lease, checkpoint)
        try:
            async with Subscription(
                self._store,
                after=checkpoint,
                batch_size=self._batch_size,
                event_types=manager.event_types(),
                max_wait=self._max_wait,
            ) as batches:
                yield batches
        finally:
            del self._held[name]

    async def _handle_with_retries(
        self, manager: type[ProcessManager], batch: list[RecordedEvent]
    ) -> None:
        attempt = 0
        while True:
            try:
                await self._handle(manager, batch)
                return
            except LeaseLostError:
                raise
            except Exception as error:
                if attempt >= self._retries:
                    raise _gave_up(manager, batch, error, attempt + 1) from _cause(error)
                _log.warning("process manager %s failed, retrying: %r", manager.name, error)
                await anyio.sleep(self._retry_delay * 2**attempt)
                attempt += 1

    async def _handle(self, manager: type[ProcessManager], batch: list[RecordedEvent]) -> None:
        """Run the batch's reactions, and commit them with the checkpoint, atomically
        (inside the batch lock, if there is one)."""
        if self._batch_lock is None:
            await self._handle_batch(manager, batch)
            return
        async with self._batch_lock(batch):
            await self._handle_batch(manager, batch)

    async def _handle_batch(
        self, manager: type[ProcessManager], batch: list[RecordedEvent]
    ) -> None:
        name = self.checkpoint_name(manager)
        held = self._held.get(name)
        end = batch[-1].log_position
        async with UnitOfWork(self._store, mappings=self._mappings) as uow:
            saved = False
            if held is not None:  # before any write: fails if another worker took over
                saved = await held.lease.guard(uow.session, held.checkpoint, end)
            work = ProcessBatch(self._store, uow)
            for recorded in batch:
                await _react(manager, work, recorded)
            if not saved:
                await uow.session.save_checkpoint(name, end)
            await uow.commit()
        if held is not None:
            held.checkpoint = end


async def _react(
    manager: type[ProcessManager], work: ProcessBatch, recorded: RecordedEvent
) -> None:
    """Run the reaction of the instance `recorded` is for (if any), caused by it."""
    process_id = manager.route(recorded)
    if process_id is None:
        return
    try:
        process = await work.instance(manager, process_id)
        with caused_by(recorded):
            await process.react(recorded, ProcessContext(recorded, work, process))
    except Exception as error:
        raise _ReactionFailed(recorded, error) from error


def _check(manager: object) -> None:
    if not (isinstance(manager, type) and issubclass(manager, ProcessManager)):
        raise ProcessManagerError(f"{manager!r} is not a ProcessManager subclass")
    if not manager.reactions():
        raise ProcessManagerError(f"{manager.__name__} has no @reacts method")


@dataclass(slots=True)
class _Held:
    lease: ProjectionLease
    checkpoint: LogPosition


class _ReactionFailed(Exception):
    def __init__(self, recorded: RecordedEvent, cause: Exception) -> None:
        super().__init__(repr(cause))
        self.recorded = recorded
        self.cause = cause


def _cause(error: Exception) -> BaseException:
    return error.cause if isinstance(error, _ReactionFailed) else error


def _gave_up(
    manager: type[ProcessManager], batch: list[RecordedEvent], error: Exception, attempts: int
) -> ProcessManagerError:
    if isinstance(error, _ReactionFailed):
        r = error.recorded
        where = (
            f"reacting to {r.event_type} at stream {r.stream_id!r} version {r.version} "
            f"(log position {tuple(r.log_position)})"
        )
        error = error.cause
    else:
        first, last = batch[0].log_position, batch[-1].log_position
        where = f"committing the batch of log positions {tuple(first)} to {tuple(last)}"
    return ProcessManagerError(
        f"process manager {manager.name!r} stopped: {where} failed {attempts} times: {error!r}"
    )
