"""The `Aggregate` base class: state rebuilt from events, changed only by recording events."""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, TypeVar

from eventcore._domain._events import DomainEvent
from eventcore._domain._handlers import cached_handlers
from eventcore._domain._metadata import NewEvent
from eventcore._exceptions import AggregateError

__all__ = ["Aggregate", "apply"]

_Handler = Callable[[Any, Any], None]
_H = TypeVar("_H", bound=Callable[..., None])
_MARK = "__eventcore_apply__"


def apply(handler: _H) -> _H:
    """Mark a method as the handler that applies one event type to the aggregate's state.

    The event type is read from the annotation of the method's event parameter. A
    handler only changes state: it must not check rules, raise, or record events
    (that is for command methods), because it also runs when history is replayed.

    ```python
    @apply
    def _registered(self, event: StudentRegistered) -> None:
        self.students.add(event.student_id)
    ```
    """
    setattr(handler, _MARK, True)
    return handler


class Aggregate:
    """Base class of event-sourced aggregates.

    Command methods check invariants and call [`record`][eventcore.Aggregate.record];
    `@apply` methods change state. Loading replays stored events through the same
    `@apply` methods, so state never diverges from history.

    Subclasses must accept the aggregate id as the only argument of `__init__` (set
    the initial state there, after `super().__init__(id)`).

    Class keyword arguments:

    - `aggregate_type`: the stable stream type stored with its events (default: class name).
    - `snapshot_every`: write a snapshot every *n* events (default: never). The class must
      then implement [`to_snapshot`][eventcore.Aggregate.to_snapshot] and
      [`restore_snapshot`][eventcore.Aggregate.restore_snapshot].
    - `snapshot_version`: bump it whenever the snapshot's shape changes; older snapshots
      are then ignored (and replaced), never misread.
    """

    aggregate_type: ClassVar[str] = "Aggregate"
    snapshot_every: ClassVar[int | None] = None
    snapshot_version: ClassVar[int] = 1

    def __init_subclass__(
        cls,
        *,
        aggregate_type: str | None = None,
        snapshot_every: int | None = None,
        snapshot_version: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        cls.aggregate_type = aggregate_type or cls.__name__
        if snapshot_every is not None:
            if snapshot_every < 1:
                raise AggregateError(f"{cls.__qualname__}: snapshot_every must be >= 1")
            cls.snapshot_every = snapshot_every
        if snapshot_version is not None:
            cls.snapshot_version = snapshot_version

    def __init__(self, id: str) -> None:
        self.id = id
        self.version = 0
        """Version including recorded but unsaved events (0 for a new aggregate)."""
        self._pending: list[NewEvent] = []

    # -- commands record events -------------------------------------------------------

    def record(self, event: DomainEvent) -> None:
        """Apply `event` to the state and keep it as a pending (unsaved) event.

        The event gets its id now, and the metadata of the current
        [`message_context`][eventcore.message_context], so a retried save is idempotent.
        """
        self._apply(event)
        self._pending.append(NewEvent.of(event))

    @property
    def pending_events(self) -> tuple[NewEvent, ...]:
        """Events recorded since the aggregate was loaded or last saved."""
        return tuple(self._pending)

    @property
    def committed_version(self) -> int:
        """The version of the last saved event: the expected version for the next save."""
        return self.version - len(self._pending)

    def mark_saved(self) -> None:
        """Forget pending events after they were stored (called by repositories)."""
        self._pending.clear()

    # -- rebuilding state -------------------------------------------------------------

    def _apply(self, event: DomainEvent) -> None:
        try:
            handler = type(self)._handlers()[type(event)]
        except KeyError:
            raise AggregateError(
                f"{type(self).__qualname__} has no @apply handler for {type(event).__qualname__}"
            ) from None
        handler(self, event)
        self.version += 1

    @classmethod
    def rehydrate(
        cls,
        aggregate_id: str,
        events: Iterable[DomainEvent],
        *,
        start: Aggregate | None = None,
    ) -> typing.Self:
        """Build an aggregate by applying `events` to a new instance (or to `start`)."""
        if start is None:
            self = cls(aggregate_id)
        elif isinstance(start, cls):
            self = start
        else:
            raise AggregateError(f"cannot continue a {type(start).__qualname__} as {cls.__name__}")
        handlers = cls._handlers()
        applied = 0
        for event in events:
            handler = handlers.get(type(event))
            if handler is None:
                raise AggregateError(
                    f"{cls.__qualname__} has no @apply handler for {type(event).__qualname__}"
                )
            handler(self, event)
            applied += 1
        self.version += applied
        return self

    @classmethod
    def _handlers(cls) -> dict[type[DomainEvent], _Handler]:
        handlers: dict[type[DomainEvent], _Handler] = cached_handlers(cls, _MARK, AggregateError)
        return handlers

    # -- snapshots --------------------------------------------------------------------

    def to_snapshot(self) -> Mapping[str, Any]:
        """Return the state as a JSON-compatible mapping (for `snapshot_every`)."""
        raise AggregateError(f"{type(self).__qualname__} must implement to_snapshot()")

    def restore_snapshot(self, state: Mapping[str, Any]) -> None:
        """Set the state from a mapping made by `to_snapshot` (for `snapshot_every`)."""
        raise AggregateError(f"{type(self).__qualname__} must implement restore_snapshot()")

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} id={self.id!r} version={self.version}>"
