"""`UnitOfWork`: one transaction for every aggregate it has seen, plus your own writes."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from eventcore._application._projector import ProjectionContext, Projector
from eventcore._application._repository import Repository, exists_error, take_snapshot_if_due
from eventcore._domain._aggregate import Aggregate
from eventcore._domain._integration import IntegrationEvent, IntegrationMapping
from eventcore._domain._metadata import NewEvent, RecordedEvent, current_context
from eventcore._exceptions import AggregateError, UnitOfWorkError, WrongExpectedVersionError
from eventcore._messaging._encoding import message_for, message_id_for
from eventcore._messaging._message import Message
from eventcore._persistence._store import (
    AppendResult,
    BeforeCommit,
    EventStore,
    EventStoreSession,
    StreamAppend,
)

__all__ = ["UnitOfWork"]

A = TypeVar("A", bound=Aggregate)


class UnitOfWork:
    """Commits the new events of every aggregate it has seen, atomically.

    Aggregates loaded or added through `uow.repository(...)` are tracked; `commit()`
    appends all their pending events in one transaction (each stream checked against
    the version it was loaded at). On a SQL store, `connection` is the transaction's
    SQLAlchemy connection: your own writes on it (an inline read model, an outbox row)
    commit or roll back together with the events. Leaving the block without `commit()`
    rolls everything back.

    `projectors` are inline projections: at commit, after the append and inside the
    same transaction, each new event goes through each of them, so the read model is
    never behind the events (on `InMemoryEventStore`, which has no transactions, they
    run right after the append).

    `mappings` publish integration events: each committed domain event that an
    [`IntegrationMapping`][eventcore.IntegrationMapping] translates puts its messages in
    the store's outbox, in the same transaction (SQL stores only), for an
    [`OutboxRelay`][eventcore.OutboxRelay] to publish. `publish()` adds one directly.

    ```python
    async with UnitOfWork(store) as uow:
        section = await uow.repository(Section).get("cs101")
        section.register("s-1")
        await uow.connection.execute(insert(roster).values(section="cs101", student="s-1"))
        await uow.commit()
    ```
    """

    def __init__(
        self,
        store: EventStore,
        *,
        projectors: Sequence[Projector] = (),
        mappings: Sequence[IntegrationMapping] = (),
    ) -> None:
        self._store = store
        self._projectors = list(projectors)
        self._mappings = list(mappings)
        self._messages: list[Message] = []
        self._context: AbstractAsyncContextManager[EventStoreSession] | None = None
        self._session: EventStoreSession | None = None
        self._seen: dict[str, Aggregate] = {}
        self._committed: list[tuple[str, NewEvent]] = []
        self._hooks: list[BeforeCommit] = []
        self._finished = False

    async def __aenter__(self) -> Self:
        if self._context is not None:
            raise UnitOfWorkError("a UnitOfWork can be entered only once; create a new one")
        self._context = self._store.session()
        self._session = await self._context.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._context is not None
        try:
            if not self._finished:
                await self.rollback()
        finally:
            await self._context.__aexit__(exc_type, exc, tb)

    @property
    def session(self) -> EventStoreSession:
        """The store session (transaction) of this unit of work."""
        if self._session is None or self._finished:
            raise UnitOfWorkError("use the UnitOfWork inside `async with`, before commit")
        return self._session

    @property
    def connection(self) -> AsyncConnection:
        """The SQLAlchemy connection of the transaction (SQL stores only)."""
        connection: Any = getattr(self.session, "connection", None)
        if not isinstance(connection, AsyncConnection):
            raise UnitOfWorkError(f"{type(self._store).__name__} has no SQLAlchemy connection")
        return connection

    def repository(self, aggregate_type: type[A]) -> Repository[A]:
        """A repository whose loads and saves belong to this unit of work."""
        return Repository(aggregate_type, self._store, unit_of_work=self)

    def publish(self, event: IntegrationEvent, *, key: str) -> Message:
        """Put `event` in the outbox at commit, with partition key `key`.

        For integration events that no domain event maps to (`mappings` cover the
        others). The message carries the current `message_context`'s correlation id.
        """
        self.session  # noqa: B018 - raises if the unit of work is not open
        metadata = current_context().metadata()
        message = message_for(
            event,
            key=key,
            correlation_id=metadata.correlation_id,
            causation_id=metadata.causation_id,
        )
        self._messages.append(message)
        return message

    def track(self, aggregate: Aggregate) -> None:
        """Include `aggregate`'s pending events in the commit (repositories call this)."""
        self.session  # noqa: B018 - raises if the unit of work is not open
        seen = self._seen.setdefault(aggregate.id, aggregate)
        if seen is not aggregate:
            raise AggregateError(
                f"two different instances of {aggregate.id!r} in one unit of work; "
                "load each aggregate once"
            )

    def before_commit(self, hook: BeforeCommit) -> None:
        """Run `hook` at commit, inside the transaction, after the append and the inline
        projections, with the append's results; if it raises, nothing is committed.

        For writes that need the appended events' positions (an idempotent command's
        stored result, say). On `InMemoryEventStore` it runs right after the append.
        """
        self.session  # noqa: B018 - raises if the unit of work is not open
        self._hooks.append(hook)

    async def commit(self) -> list[AppendResult]:
        """Append every tracked aggregate's pending events and commit, atomically."""
        session = self.session
        dirty = [a for a in self._seen.values() if a.pending_events]
        appends: Sequence[StreamAppend] = [
            StreamAppend(a.id, a.pending_events, a.committed_version, type(a).aggregate_type)
            for a in dirty
        ]
        self._finished = True

        async def before_commit(results: list[AppendResult]) -> None:
            recorded_events = _recorded(dirty, results)
            for recorded in recorded_events:
                context = ProjectionContext(recorded, session)
                for projector in self._projectors:
                    await projector.project(recorded, context)
            messages = self._messages + _translated(self._mappings, recorded_events)
            if messages:
                await _outbox_session(session).add_messages(messages)
            for extra in self._hooks:
                await extra(results)

        needed = self._messages or self._hooks or (dirty and (self._projectors or self._mappings))
        hook = before_commit if needed else None
        try:
            results = await session.commit(appends, before_commit=hook)
        except WrongExpectedVersionError as conflict:
            new = [a for a in dirty if a.committed_version == 0 and a.id == conflict.stream_id]
            if not new:
                raise
            raise exists_error(new[0], conflict) from None
        for aggregate in dirty:
            previous = aggregate.committed_version
            self._committed.extend((aggregate.id, e) for e in aggregate.pending_events)
            aggregate.mark_saved()
            await take_snapshot_if_due(self._store.snapshots, aggregate, previous)
        return results

    async def rollback(self) -> None:
        """Discard the events and writes of this unit of work."""
        session = self.session
        self._finished = True
        await session.rollback()

    @property
    def committed_events(self) -> list[tuple[str, NewEvent]]:
        """`(stream_id, event)` pairs committed by `commit()`, in order, for dispatching."""
        return list(self._committed)


def _translated(
    mappings: Sequence[IntegrationMapping], recorded_events: list[RecordedEvent]
) -> list[Message]:
    messages = []
    for recorded in recorded_events:
        for mapping in mappings:
            for index, event in enumerate(mapping.translate(recorded)):
                messages.append(
                    message_for(
                        event,
                        key=mapping.partition_key(recorded, event),
                        message_id=message_id_for(recorded, event, index),
                        correlation_id=recorded.correlation_id or str(recorded.event_id),
                        causation_id=str(recorded.event_id),
                    )
                )
    return messages


def _outbox_session(session: EventStoreSession) -> Any:
    if not hasattr(session, "add_messages"):
        raise UnitOfWorkError(
            f"{type(session).__name__} has no outbox: publishing integration events needs "
            "a SqlAlchemyEventStore (the outbox commits in the events' transaction)"
        )
    return session


def _recorded(aggregates: list[Aggregate], results: list[AppendResult]) -> list[RecordedEvent]:
    """The just-appended events as `RecordedEvent`s (their transaction id is not known)."""
    now = datetime.now(UTC)
    recorded = []
    for aggregate, result in zip(aggregates, results, strict=True):
        pending = aggregate.pending_events
        first = result.next_expected_version - len(pending) + 1
        for offset, (new, position) in enumerate(
            zip(pending, result.global_positions, strict=True)
        ):
            event = new.event
            recorded.append(
                RecordedEvent(
                    event,
                    new.event_id,
                    aggregate.id,
                    type(aggregate).aggregate_type,
                    first + offset,
                    position,
                    now,
                    type(event).event_type_name,
                    type(event).event_schema_version,
                    new.metadata,
                )
            )
    return recorded
