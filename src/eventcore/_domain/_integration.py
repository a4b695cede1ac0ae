"""Integration events: the public, versioned contracts between bounded contexts.

Domain events are a context's private history; integration events are what it promises
to others. An [`IntegrationMapping`][eventcore.IntegrationMapping] says which domain
events become which integration events, so the private model can change while the
contract stays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

from eventcore._domain._events import DomainEvent, EventRegistry, default_registry
from eventcore._domain._handlers import cached_handlers, stored_names
from eventcore._domain._metadata import RecordedEvent
from eventcore._domain._personal import SCHEMA_ATTRIBUTE, read_schema, register_message_schema
from eventcore._exceptions import IntegrationEventError

__all__ = ["IntegrationEvent", "IntegrationMapping", "translates"]

_MARK = "__eventcore_translates__"
_T = TypeVar("_T", bound=Callable[..., Any])


class IntegrationEvent(BaseModel):
    """Base class of integration events: immutable pydantic v2 models published to brokers.

    Keyword arguments of the class statement:

    - `type_name`: the contract's stable name (default: the class name); consumers
      find their handler by it.
    - `version`: the contract's schema version (default 1), sent with every message.
    - `topic`: where messages of this type are published (a RabbitMQ routing key, a
      NATS subject); default: the type name.

    Consumers read with a *tolerant reader*: fields they do not know are ignored, so a
    producer may add optional fields without a new version. Removing or changing a
    field is a new `version` (or a new type).

    ```python
    class StudentEnrolled(IntegrationEvent, type_name="registration.StudentEnrolled",
                          topic="registration.enrolments"):
        student_id: str
        section_id: str
    ```
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    integration_type_name: ClassVar[str] = ""
    """The contract's stable type name."""
    integration_schema_version: ClassVar[int] = 1
    """The contract's schema version."""
    integration_topic: ClassVar[str] = ""
    """The topic messages of this type are published to."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        for key in ("type_name", "version", "topic"):
            kwargs.pop(key, None)
        super().__init_subclass__(**kwargs)

    @classmethod
    def __pydantic_init_subclass__(
        cls,
        *,
        type_name: str | None = None,
        version: int = 1,
        topic: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise IntegrationEventError(
                f"{cls.__qualname__}: version must be an int >= 1, not {version!r}"
            )
        cls.integration_type_name = type_name or cls.__name__
        cls.integration_schema_version = version
        cls.integration_topic = topic or cls.integration_type_name
        if not cls.integration_topic.strip():
            raise IntegrationEventError(f"{cls.__qualname__}: topic must not be blank")
        schema = read_schema(cls)
        setattr(cls, SCHEMA_ATTRIBUTE, schema)
        register_message_schema(cls.integration_type_name, version, schema)


def translates(handler: _T) -> _T:
    """Mark a method of an `IntegrationMapping` as the translation of one domain event type.

    The domain event type is read from the annotation of the event parameter; the
    second parameter is the [`RecordedEvent`][eventcore.RecordedEvent] (stream, version,
    metadata). Return the integration event(s) to publish, or `None` to publish none.
    """
    setattr(handler, _MARK, True)
    return handler


class IntegrationMapping:
    """Which domain events a bounded context publishes, as which integration events.

    One per bounded context; give it to the [`UnitOfWork`][eventcore.UnitOfWork] (or the
    context's `bootstrap()`), and every committed domain event that has a translation
    puts its integration events in the outbox, in the same transaction:

    ```python
    class RegistrationContract(IntegrationMapping):
        @translates
        def _registered(self, event: StudentRegistered, recorded: RecordedEvent
                        ) -> StudentEnrolled:
            return StudentEnrolled(student_id=event.student_id, section_id=recorded.stream_id)
    ```

    Each message's partition key is the domain event's stream id (so one aggregate's
    messages stay in order) unless `partition_key` is overridden.
    """

    @classmethod
    def translations(cls) -> dict[type[DomainEvent], Callable[..., Any]]:
        """The translation method of each domain event class."""
        found: dict[type[DomainEvent], Callable[..., Any]]
        found = cached_handlers(cls, _MARK, IntegrationEventError)
        return found

    @classmethod
    def event_types(cls, registry: EventRegistry | None = None) -> list[str]:
        """The stored domain event type names this mapping translates (aliases included)."""
        return stored_names(cls.translations(), registry or default_registry)

    def translate(self, recorded: RecordedEvent) -> list[IntegrationEvent]:
        """The integration events to publish for `recorded` (none if it is not mapped)."""
        translation = type(self).translations().get(type(recorded.event))
        if translation is None:
            return []
        result = translation(self, recorded.event, recorded)
        events = _as_list(result)
        for event in events:
            if not isinstance(event, IntegrationEvent):
                raise IntegrationEventError(
                    f"{type(self).__name__}.{translation.__name__} returned "
                    f"{type(event).__name__}, not an IntegrationEvent"
                )
        return events

    def partition_key(self, recorded: RecordedEvent, event: IntegrationEvent) -> str:
        """The partition key of `event`'s message: by default the source stream's id."""
        return recorded.stream_id


def _as_list(result: object) -> list[Any]:
    if result is None:
        return []
    if isinstance(result, IntegrationEvent):
        return [result]
    if isinstance(result, Iterable) and not isinstance(result, (str, bytes, BaseModel)):
        return list(result)
    return [result]
