"""Domain events: immutable pydantic models with a stable type name and a schema version."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from eventcore._domain._personal import SCHEMA_ATTRIBUTE, read_schema
from eventcore._exceptions import (
    EventDeserializationError,
    EventTypeConflictError,
    EventTypeError,
    UnknownEventTypeError,
    UnknownEventVersionError,
)

__all__ = ["DomainEvent", "EventRegistry", "Upcaster", "default_registry", "upcaster"]

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns the payload of schema version *n* (a JSON object as a dict) into version *n + 1*."""

_F = TypeVar("_F", bound=Upcaster)


class DomainEvent(BaseModel):
    """Base class of domain events: immutable pydantic v2 models.

    Each subclass is registered under a stable type name (its class name unless
    `type_name=` says otherwise) and a schema `version` (1 unless given). The name is
    what is stored, so renaming the Python class does not break stored events as long
    as the name stays: pin it with `type_name=` before you rename.

    ```python
    class StudentRegistered(DomainEvent, type_name="registration.StudentRegistered", version=2):
        student_id: str
        source: str = "web"
    ```

    Keyword arguments of the class statement:

    - `type_name`: the stable name stored with every event (default: the class name).
    - `version`: the payload's schema version; older stored versions are upcast on read.
    - `aliases`: older type names that should also decode to this class.
    - `registry`: the [`EventRegistry`][eventcore.EventRegistry] to register in
      (default: the process-wide `default_registry`); `None` registers nowhere.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type_name: ClassVar[str] = ""
    """The stable type name stored with each event of this class."""
    event_schema_version: ClassVar[int] = 1
    """The schema version of this class's payload."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        for key in ("type_name", "version", "aliases", "registry"):
            kwargs.pop(key, None)
        super().__init_subclass__(**kwargs)

    @classmethod
    def __pydantic_init_subclass__(
        cls,
        *,
        type_name: str | None = None,
        version: int = 1,
        aliases: Iterable[str] = (),
        registry: EventRegistry | bool | None = True,
        **kwargs: Any,
    ) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise EventTypeError(
                f"{cls.__qualname__}: version must be an int >= 1, not {version!r}"
            )
        cls.event_type_name = type_name or cls.__name__
        cls.event_schema_version = version
        setattr(cls, SCHEMA_ATTRIBUTE, read_schema(cls))
        target = default_registry if registry is True else registry
        if isinstance(target, EventRegistry):
            target.register(cls, aliases=aliases)


class EventRegistry:
    """Maps stable type names to event classes, and holds the upcasters between versions.

    Most applications use the process-wide `default_registry`, which every
    [`DomainEvent`][eventcore.DomainEvent] subclass joins when it is defined.
    """

    def __init__(self) -> None:
        self._classes: dict[str, type[DomainEvent]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        # type name -> (current version, fast JSON validator of the class)
        self._decoders: dict[str, tuple[int, Callable[[str | bytes], Any]]] = {}

    def register(self, cls: type[DomainEvent], *, aliases: Iterable[str] = ()) -> None:
        """Register `cls` under its `event_type_name` and each of `aliases`."""
        for name in (cls.event_type_name, *aliases):
            existing = self._classes.get(name)
            if existing is not None and not _same_class(existing, cls):
                raise EventTypeConflictError(name, existing, cls)
            self._classes[name] = cls
            self._decoders[name] = (
                cls.event_schema_version,
                cls.__pydantic_validator__.validate_json,
            )

    def register_upcaster(self, type_name: str, from_version: int, upcast: Upcaster) -> None:
        """Register `upcast` to turn `type_name` payloads of `from_version` into the next one."""
        key = (type_name, from_version)
        if key in self._upcasters and self._upcasters[key] is not upcast:
            raise EventTypeError(
                f"an upcaster for {type_name!r} from version {from_version} is already registered"
            )
        self._upcasters[key] = upcast

    def class_for(self, type_name: str) -> type[DomainEvent]:
        """Return the class registered for `type_name`, or raise `UnknownEventTypeError`."""
        try:
            return self._classes[type_name]
        except KeyError:
            raise UnknownEventTypeError(type_name) from None

    def names_of(self, cls: type[DomainEvent]) -> list[str]:
        """Every stored type name that decodes to `cls`: its own and its aliases."""
        return [name for name, known in self._classes.items() if _same_class(known, cls)]

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._classes

    def decode(
        self,
        type_name: str,
        schema_version: int,
        payload: str | bytes,
        stream_id: str = "?",
        version: int = 0,
    ) -> DomainEvent:
        """Decode a stored payload into its event class, upcasting older versions.

        `stream_id` and `version` say where the payload came from, for error messages.
        """
        try:
            current, validate_json = self._decoders[type_name]
        except KeyError:
            raise UnknownEventTypeError(type_name) from None
        try:
            if schema_version == current:
                event: DomainEvent = validate_json(payload)
                return event
            return self._decode_other_version(type_name, schema_version, current, payload)
        except ValidationError as error:
            location = f"stream {stream_id!r} version {version}"
            raise EventDeserializationError(type_name, location, _short(error)) from error
        except json.JSONDecodeError as error:
            location = f"stream {stream_id!r} version {version}"
            raise EventDeserializationError(
                type_name, location, f"invalid JSON: {error}"
            ) from error

    def _decode_other_version(
        self, type_name: str, stored: int, current: int, payload: str | bytes
    ) -> DomainEvent:
        if stored > current:
            raise UnknownEventVersionError(
                type_name, stored, current, "it was written by newer code"
            )
        data = json.loads(payload)
        if not isinstance(data, dict):
            raise json.JSONDecodeError("payload is not a JSON object", str(payload), 0)
        for version in range(stored, current):
            upcast = self._upcasters.get((type_name, version))
            if upcast is None:
                raise UnknownEventVersionError(
                    type_name, stored, current, f"no upcaster from version {version}"
                )
            data = upcast(data)
        return self._classes[type_name].model_validate(data)


def _same_class(a: type, b: type) -> bool:
    # A module reloaded (or a class redefined in a REPL) is the same event type.
    return a is b or (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)


def _short(error: ValidationError) -> str:
    parts = [f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in error.errors()]
    return "; ".join(parts[:5])


default_registry = EventRegistry()
"""The process-wide registry every `DomainEvent` subclass joins unless told otherwise."""


def upcaster(
    event: type[DomainEvent] | str,
    *,
    from_version: int,
    registry: EventRegistry | None = None,
) -> Callable[[_F], _F]:
    """Register the decorated function as the upcaster of `event` from `from_version`.

    ```python
    @upcaster(StudentRegistered, from_version=1)
    def add_source(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "source": "legacy"}
    ```
    """
    type_name = event if isinstance(event, str) else event.event_type_name

    def decorate(fn: _F) -> _F:
        (registry or default_registry).register_upcaster(type_name, from_version, fn)
        return fn

    return decorate
