"""`ProcessManager`: a saga whose state is event-sourced and that reacts to events."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from eventcore._application._repository import Repository
from eventcore._application._unit_of_work import UnitOfWork
from eventcore._domain._aggregate import Aggregate
from eventcore._domain._events import DomainEvent, EventRegistry, default_registry
from eventcore._domain._handlers import cached_handlers, stored_names
from eventcore._domain._metadata import NewEvent, RecordedEvent
from eventcore._exceptions import AggregateError, AggregateNotFoundError, ProcessManagerError
from eventcore._persistence._store import EventStore

__all__ = ["ProcessBatch", "ProcessContext", "ProcessManager", "reacts"]

_MARK = "__eventcore_reacts__"
_H = TypeVar("_H", bound=Callable[..., Awaitable[None]])
A = TypeVar("A", bound=Aggregate)
P = TypeVar("P", bound="ProcessManager")
_Reaction = Callable[..., Awaitable[None]]


def reacts(handler: _H) -> _H:
    """Mark an async method of a `ProcessManager` as its reaction to one event type.

    The event type is read from the annotation of the event parameter; the second
    parameter is the [`ProcessContext`][eventcore.ProcessContext]:

    ```python
    @reacts
    async def _registered(self, event: StudentRegistered, context: ProcessContext) -> None:
        self.record(RegistrationStarted(student_id=event.student_id))
    ```
    """
    setattr(handler, _MARK, True)
    return handler


class ProcessManager(Aggregate):
    """Base class of process managers (sagas): react to events with commands.

    A process manager is an aggregate of its own: each instance (one registration,
    one order...) keeps its state in a stream, `"{name}-{process_id}"` of stream type
    `"process.{name}"`, changed by `record()` and `@apply` methods as usual. Its
    `@reacts` methods are called with the events it follows, and may record events,
    run commands on other aggregates ([`context.repository`][eventcore.ProcessContext.repository])
    and schedule deadlines ([`context.schedule`][eventcore.ProcessContext.schedule]).
    A [`ProcessManagerWorker`][eventcore.ProcessManagerWorker] runs them.

    Override [`process_id_of`][eventcore.ProcessManager.process_id_of] to say which
    instance an event is for. The first event for an instance finds it new (version
    0, the state `__init__` sets): its reaction decides whether a process starts, by
    recording an event; an instance that records nothing is not stored.

    Class keyword arguments: `name` (default: the class name) names the streams and
    the worker's checkpoint: keep it stable. The others are `Aggregate`'s.
    """

    name: ClassVar[str] = "ProcessManager"

    def __init_subclass__(cls, *, name: str | None = None, **kwargs: Any) -> None:
        process_name = name or cls.__name__
        if not process_name.isprintable():
            raise ProcessManagerError(f"{cls.__name__}: invalid process name {process_name!r}")
        super().__init_subclass__(aggregate_type=f"process.{process_name}", **kwargs)
        cls.name = process_name

    @property
    def process_id(self) -> str:
        """This instance's process id (its stream id without the `"{name}-"` prefix)."""
        return self.id.removeprefix(f"{type(self).name}-")

    @classmethod
    def stream_id_of(cls, process_id: str) -> str:
        """The stream of the instance `process_id`."""
        return f"{cls.name}-{process_id}"

    @classmethod
    def process_id_of(cls, recorded: RecordedEvent) -> str | None:
        """The process id of the instance that reacts to `recorded`; `None`: none does.

        Override it for the events of other streams (the default returns `None`).
        Events of the manager's own streams, such as its deadlines, always go to the
        instance whose stream they are in, without asking.
        """
        return None

    @classmethod
    def route(cls, recorded: RecordedEvent) -> str | None:
        """Which instance reacts to `recorded`: its own stream's, else `process_id_of`."""
        if recorded.stream_type == cls.aggregate_type:
            prefix = f"{cls.name}-"
            if recorded.stream_id.startswith(prefix):
                return recorded.stream_id[len(prefix) :]
            return None
        return cls.process_id_of(recorded)

    @classmethod
    def reactions(cls) -> dict[type[DomainEvent], _Reaction]:
        """The `@reacts` method of each event class this manager reacts to."""
        reactions: dict[type[DomainEvent], _Reaction]
        reactions = cached_handlers(cls, _MARK, ProcessManagerError)
        return reactions

    @classmethod
    def event_types(cls, registry: EventRegistry | None = None) -> list[str]:
        """The stored type names this manager reads (aliases included)."""
        return stored_names(cls.reactions(), registry or default_registry)

    async def react(self, recorded: RecordedEvent, context: ProcessContext) -> None:
        """Run the reaction to `recorded` (called by the worker)."""
        reaction = type(self).reactions().get(type(recorded.event))
        if reaction is not None:
            await reaction(self, recorded.event, context)

    @classmethod
    def rehydrate(
        cls,
        aggregate_id: str,
        events: Iterable[DomainEvent],
        *,
        start: Aggregate | None = None,
    ) -> Self:
        """Rebuild an instance; events it only reacts to (deadlines) leave state as is.

        An event in the stream that has a `@reacts` method but no `@apply` method (a
        fired deadline, say) counts as a version without changing the state.
        """
        applies, reactions = cls._handlers(), cls.reactions()
        events = list(events)
        kept = [e for e in events if type(e) in applies or type(e) not in reactions]
        process = super().rehydrate(aggregate_id, kept, start=start)
        process.version += len(events) - len(kept)
        return process


class ProcessBatch:
    """One batch of a worker: its unit of work, and each aggregate it loaded (once)."""

    def __init__(self, store: EventStore, unit_of_work: UnitOfWork) -> None:
        self.store = store
        self.unit_of_work = unit_of_work
        self._loaded: dict[str, Aggregate] = {}

    def repository(self, aggregate_type: type[A]) -> Repository[A]:
        """A repository of this batch's unit of work, that loads each aggregate once."""
        return _BatchRepository(aggregate_type, self.store, self.unit_of_work, self._loaded)

    async def instance(self, manager: type[P], process_id: str) -> P:
        """The instance `process_id` of `manager`: loaded, or new (and tracked)."""
        repository = self.repository(manager)
        stream_id = manager.stream_id_of(process_id)
        try:
            return await repository.get(stream_id)
        except AggregateNotFoundError:
            process = manager(stream_id)
            self.unit_of_work.track(process)
            self._loaded[stream_id] = process
            return process


class _BatchRepository(Repository[A]):
    """`get` returns the aggregate loaded earlier in the batch, if any."""

    def __init__(
        self,
        aggregate_type: type[A],
        store: EventStore,
        unit_of_work: UnitOfWork,
        loaded: dict[str, Aggregate],
    ) -> None:
        super().__init__(aggregate_type, store, unit_of_work=unit_of_work)
        self._loaded = loaded

    async def get(
        self,
        aggregate_id: str,
        *,
        at_version: int | None = None,
        as_of: datetime | None = None,
    ) -> A:
        """Load the aggregate once per batch (a past version is read outside the batch)."""
        if at_version is not None or as_of is not None:
            past = Repository(self.aggregate_type, self._store)
            return await past.get(aggregate_id, at_version=at_version, as_of=as_of)
        found = self._loaded.get(aggregate_id)
        if found is None:
            found = self._loaded[aggregate_id] = await super().get(aggregate_id)
        if not isinstance(found, self.aggregate_type):
            raise AggregateError(f"{aggregate_id!r} is loaded as {found!r} in this batch")
        return found

    async def add(self, aggregate: A) -> None:
        """Add a new aggregate: its events commit with the batch."""
        await super().add(aggregate)
        self._loaded[aggregate.id] = aggregate


class ProcessContext:
    """What a reaction gets besides the event: commands, SQL and deadlines, in its batch.

    Everything done through it commits in the batch's one transaction, together with
    the process's new events and the worker's checkpoint: a batch that fails or is
    delivered again after a crash leaves no trace of its first try.
    """

    def __init__(
        self, recorded: RecordedEvent, batch: ProcessBatch, process: ProcessManager
    ) -> None:
        self.recorded = recorded
        """The event as stored: ids, stream, version, positions, metadata."""
        self._batch = batch
        self._process = process

    def repository(self, aggregate_type: type[A]) -> Repository[A]:
        """A repository for commands on other aggregates, in the batch's unit of work.

        Load an aggregate with `get` (each once per batch: a second `get` returns the
        same instance), call its command methods, or `add` a new one; the events
        commit with the batch. Do not `save`: the batch does.
        """
        return self._batch.repository(aggregate_type)

    @property
    def connection(self) -> AsyncConnection:
        """The batch transaction's SQLAlchemy connection (SQL stores only)."""
        return self._batch.unit_of_work.connection

    async def schedule(self, when: datetime | timedelta | float, event: DomainEvent) -> uuid.UUID:
        """Deliver `event` back to this instance at `when`; return the deadline's id.

        `when` is a timezone-aware `datetime`, or a delay (a `timedelta` or seconds).
        At that time the event is appended to this instance's stream, so it reaches
        its `@reacts` method (the manager must have one). The id is also the event's
        id, and can [`cancel`][eventcore.ProcessContext.cancel] the deadline.
        """
        manager = type(self._process)
        if type(event) not in manager.reactions():
            raise ProcessManagerError(
                f"{manager.__name__} schedules {type(event).__name__}, which it has no "
                "@reacts method for"
            )
        new = NewEvent.of(event)
        session = self._batch.unit_of_work.session
        due_at = _due_at(when)
        await session.schedule_deadline(
            self._process.id, new, due_at, stream_type=manager.aggregate_type
        )
        return new.event_id

    async def cancel(self, deadline_id: uuid.UUID) -> None:
        """Cancel a deadline scheduled earlier, with the batch.

        A deadline that fired already is delivered all the same: reactions to
        deadlines should check the state (say, "still waiting for the payment?").
        """
        await self._batch.unit_of_work.session.cancel_deadline(deadline_id)


def _due_at(when: datetime | timedelta | float) -> datetime:
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise ProcessManagerError(f"schedule at a timezone-aware datetime, not {when!r}")
        return when
    if isinstance(when, timedelta):
        return datetime.now(UTC) + when
    if isinstance(when, int | float) and not isinstance(when, bool):
        return datetime.now(UTC) + timedelta(seconds=when)
    raise ProcessManagerError(f"schedule at a datetime, a timedelta or seconds, not {when!r}")
