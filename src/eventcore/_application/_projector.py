"""`Projector`: a read model kept up to date from events, one handler per event type."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, Literal, TypeVar, get_args

from sqlalchemy import Table
from sqlalchemy import insert as sa_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from eventcore._application._bulk_insert import insert_many
from eventcore._domain._events import DomainEvent, EventRegistry, default_registry
from eventcore._domain._handlers import cached_handlers, stored_names
from eventcore._domain._metadata import RecordedEvent
from eventcore._exceptions import ProjectionError
from eventcore._persistence._store import EventStoreSession

__all__ = ["OnFailure", "ProjectionContext", "Projector", "projects"]

_MARK = "__eventcore_projects__"
_H = TypeVar("_H", bound=Callable[..., Awaitable[None]])

OnFailure = Literal["stop", "park"]
"""What a worker does with an event a projector still fails on after its retries."""


def projects(handler: _H) -> _H:
    """Mark an async method of a `Projector` as the handler of one event type.

    The event type is read from the annotation of the event parameter; the second
    parameter is the [`ProjectionContext`][eventcore.ProjectionContext]:

    ```python
    @projects
    async def _registered(self, event: StudentRegistered, context: ProjectionContext) -> None:
        await context.connection.execute(insert(roster).values(student=event.student_id))
    ```
    """
    setattr(handler, _MARK, True)
    return handler


class ProjectionContext:
    """What a projector's handler gets besides the event: where it stands, where to write."""

    def __init__(
        self,
        recorded: RecordedEvent,
        session: EventStoreSession,
        rows: PendingRows | None = None,
    ) -> None:
        self.recorded = recorded
        """The event as stored: ids, stream, version, positions, metadata."""
        self._session = session
        self._rows = rows

    async def insert(self, table: Table, row: Mapping[str, Any]) -> None:
        """Insert `row` into `table`, possibly together with the batch's other rows.

        A worker collects the rows of a batch and writes them in one `executemany` per
        table at the end of the batch (much faster than a statement per event); if that
        fails, it retries the batch writing each row at once, so the failing event is
        known. Use it for rows that no later handler of the same batch reads or
        updates; write those on `connection` directly.

        On PostgreSQL the statement goes straight to asyncpg when SQLAlchemy would not
        change the values (no JSON, Enum, Boolean or other processed column types, no
        Python-side defaults left to fill in), so SQLAlchemy's events do not see it.
        """
        if self._rows is None:
            await self.connection.execute(sa_insert(table), [dict(row)])
        else:
            self._rows.add(table, row)

    @property
    def connection(self) -> AsyncConnection:
        """The transaction's SQLAlchemy connection: write the read model here.

        The projection's checkpoint commits in the same transaction, so every event
        changes the read model exactly once, even across crashes and restarts.
        """
        connection: Any = getattr(self._session, "connection", None)
        if not isinstance(connection, AsyncConnection):
            raise ProjectionError("this store has no SQLAlchemy connection to write a read model")
        return connection


class PendingRows:
    """Rows that a batch's handlers insert, written in one statement per table."""

    def __init__(self) -> None:
        self._rows: dict[Table, list[dict[str, Any]]] = {}

    def __bool__(self) -> bool:
        return bool(self._rows)

    def add(self, table: Table, row: Mapping[str, Any]) -> None:
        """Keep `row` for `table` until `flush`."""
        self._rows.setdefault(table, []).append(dict(row))

    async def flush(self, connection: AsyncConnection) -> None:
        """Insert every kept row on `connection`, one executemany per table."""
        rows, self._rows = self._rows, {}
        for table, values in rows.items():
            await insert_many(connection, table, values)


def _key(cls: type[Projector]) -> str:
    """The storage key of `cls`, once its name and version are checked."""
    if "@" in cls.name:
        raise ProjectionError(f"{cls.__name__}: a projector name cannot contain '@'")
    version = cls.version
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ProjectionError(f"{cls.__name__}: version must be an int >= 1, not {version!r}")
    return cls.name if version == 1 else f"{cls.name}@v{version}"


class Projector:
    """Base class of projectors: named, with one `@projects` handler per event type.

    The `name` (a class keyword, default: the class name) identifies the projection's
    checkpoint: keep it stable. Events without a handler are skipped (they are not even
    read, the subscription filters by type).

    The `version` (a class keyword, default 1) is the version of the read model's
    schema. A new version is a new projector with the same `name` that writes to a
    table (or schema) of its own; it has its own checkpoint, lease and dead letters
    (under its [`key`][eventcore.Projector.key]), so it can be built from the start of
    the log while the old version keeps serving, then switched to (see
    [Rebuilding projections](../concepts/rebuilding-projections.md)).

    Handlers of an asynchronous projection (run by a
    [`ProjectionWorker`][eventcore.ProjectionWorker]) take effect exactly once for writes
    on `context.connection`; anything else they do (an e-mail, a call to another
    service) happens at least once, so make it idempotent, keyed by
    `context.recorded.event_id`.

    When a handler keeps failing on an event, the class keyword `on_failure` decides:
    `"stop"` (the default) stops the projector; `"park"` moves the event to the store's
    dead letters and goes on, and with `ordered=True` (the default) the later events
    of the same stream are parked too, unrun, until the dead letters are replayed or
    discarded (see [Dead letters](../concepts/dead-letters.md)).
    """

    name: ClassVar[str] = "Projector"
    version: ClassVar[int] = 1
    """The version of the read model's schema (1, 2, ...): each writes its own tables."""
    key: ClassVar[str] = "Projector"
    """What the checkpoint, lease and dead letters are stored under: the `name` for
    version 1, `name@vN` for a later version N."""
    on_failure: ClassVar[OnFailure] = "stop"
    """`"stop"` or `"park"`: what to do with an event that still fails after retries."""
    ordered: ClassVar[bool] = True
    """With `"park"`: whether later events of a parked event's stream wait for it."""

    def __init_subclass__(
        cls,
        *,
        name: str | None = None,
        version: int | None = None,
        on_failure: OnFailure | None = None,
        ordered: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        cls.name = name or cls.__name__
        if version is not None:
            cls.version = version
        cls.key = _key(cls)
        if on_failure is not None:
            cls.on_failure = on_failure
        if ordered is not None:
            cls.ordered = ordered
        if cls.on_failure not in get_args(OnFailure):
            raise ProjectionError(
                f"{cls.__name__}: on_failure must be 'stop' or 'park', not {cls.on_failure!r}"
            )

    @classmethod
    def handlers(cls) -> dict[type[DomainEvent], Callable[..., Awaitable[None]]]:
        """The handler method of each event class this projector handles."""
        handlers: dict[type[DomainEvent], Callable[..., Awaitable[None]]]
        handlers = cached_handlers(cls, _MARK, ProjectionError)
        return handlers

    @classmethod
    def event_types(cls, registry: EventRegistry | None = None) -> list[str]:
        """The stored type names this projector reads (aliases included)."""
        return stored_names(cls.handlers(), registry or default_registry)

    async def project(self, recorded: RecordedEvent, context: ProjectionContext) -> None:
        """Apply one event to the read model (called by workers and units of work)."""
        handler = type(self).handlers().get(type(recorded.event))
        if handler is not None:
            await handler(self, recorded.event, context)
