"""Finding the methods of a class that handle events, by the annotation of their event."""

from __future__ import annotations

import sys
import typing
from collections.abc import Callable, Iterable
from typing import Any

from eventcore._domain._events import DomainEvent, EventRegistry
from eventcore._exceptions import EventcoreError

__all__ = ["cached_handlers", "collect_handlers", "stored_names"]


def collect_handlers(
    cls: type, mark: str, error: type[EventcoreError], base: type = DomainEvent
) -> dict[type[Any], Callable[..., Any]]:
    """Map each event class to the method of `cls` marked with attribute `mark` for it.

    The event class is the annotation of the method's first parameter after `self`.
    A subclass's handler overrides its bases'; an override of a marked method, even
    undecorated, is what runs. Misdeclared handlers raise `error`. The event classes
    must derive from `base` (`DomainEvent`, or `IntegrationEvent` for consumers).
    """
    handlers: dict[type[Any], Callable[..., Any]] = {}
    seen: set[str] = set()
    for klass in cls.__mro__:  # most derived first
        for name, member in vars(klass).items():
            if name in seen or not getattr(member, mark, False):
                continue
            seen.add(name)
            handlers.setdefault(_event_type_of(klass, member, error, base), getattr(cls, name))
    return handlers


def cached_handlers(
    cls: type, mark: str, error: type[EventcoreError], base: type = DomainEvent
) -> dict[type[Any], Callable[..., Any]]:
    """`collect_handlers(cls, mark, error, base)`, worked out once per class and kept on it."""
    key = f"_eventcore_handlers{mark}"
    cached: dict[type[Any], Callable[..., Any]] | None = cls.__dict__.get(key)
    if cached is None:
        cached = collect_handlers(cls, mark, error, base)
        setattr(cls, key, cached)
    return cached


def stored_names(classes: Iterable[type[DomainEvent]], registry: EventRegistry) -> list[str]:
    """Every stored type name (aliases included) of `classes`, sorted."""
    return sorted({name for cls in classes for name in registry.names_of(cls)})


def _event_type_of(
    klass: type, handler: Callable[..., Any], error: type[EventcoreError], base: type
) -> type[Any]:
    module = sys.modules.get(klass.__module__)
    namespace = {**vars(module)} if module else {}
    namespace.setdefault(klass.__name__, klass)
    where = f"{klass.__qualname__}.{handler.__name__}"
    try:
        hints = typing.get_type_hints(handler, globalns=namespace)
    except NameError as cause:
        raise error(f"{where}: cannot resolve its event annotation: {cause}") from cause
    params = [p for p in hints if p != "return"]
    event_type = hints[params[0]] if params else None
    if not (isinstance(event_type, type) and issubclass(event_type, base)):
        raise error(
            f"{where}: annotate the event parameter with a {base.__name__} subclass, "
            "e.g. `def _on(self, event: SomethingHappened) -> None`"
        )
    return event_type
