"""Domain events: registration, immutability, decoding and upcasting."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from eventcore import (
    DomainEvent,
    EventDeserializationError,
    EventRegistry,
    EventTypeConflictError,
    EventTypeError,
    InMemoryEventStore,
    UnknownEventTypeError,
    UnknownEventVersionError,
    default_registry,
    upcaster,
)


class Opened(DomainEvent, type_name="test_events.Opened", aliases=("test_events.OldOpened",)):
    """A registered event, in the default registry."""

    capacity: int


class Versioned(DomainEvent, type_name="test_events.Versioned", version=4):
    """An event at schema version 4."""

    name: str


# -- registration ---------------------------------------------------------------------


def test_type_name_defaults_to_class_name() -> None:
    registry = EventRegistry()

    class PlainThing(DomainEvent, registry=registry):
        value: int

    assert PlainThing.event_type_name == "PlainThing"
    assert PlainThing.event_schema_version == 1
    assert registry.class_for("PlainThing") is PlainThing


def test_explicit_type_name_and_version_are_registered() -> None:
    assert Opened.event_type_name == "test_events.Opened"
    assert Opened.event_schema_version == 1
    assert Versioned.event_schema_version == 4
    assert default_registry.class_for("test_events.Opened") is Opened
    assert "test_events.Versioned" in default_registry
    assert "Opened" not in default_registry  # the class name is not registered too


def test_aliases_resolve_to_the_class() -> None:
    assert default_registry.class_for("test_events.OldOpened") is Opened
    event = default_registry.decode("test_events.OldOpened", 1, '{"capacity": 3}')
    assert event == Opened(capacity=3)


def test_registry_none_registers_nowhere() -> None:
    class Unregistered(DomainEvent, type_name="test_events.Unregistered", registry=None):
        pass

    assert Unregistered.event_type_name == "test_events.Unregistered"
    assert "test_events.Unregistered" not in default_registry


def test_same_type_name_on_two_classes_conflicts() -> None:
    registry = EventRegistry()

    class First(DomainEvent, type_name="test_events.Clash", registry=registry):
        pass

    with pytest.raises(EventTypeConflictError, match=r"test_events\.Clash") as caught:

        class Second(DomainEvent, type_name="test_events.Clash", registry=registry):
            pass

    assert caught.value.type_name == "test_events.Clash"
    assert registry.class_for("test_events.Clash") is First


def test_alias_that_names_another_class_conflicts() -> None:
    registry = EventRegistry()

    class Taken(DomainEvent, type_name="test_events.Taken", registry=registry):
        pass

    with pytest.raises(EventTypeConflictError):

        class Thief(
            DomainEvent,
            type_name="test_events.Thief",
            aliases=("test_events.Taken",),
            registry=registry,
        ):
            pass

    assert registry.class_for("test_events.Taken") is Taken


def test_registering_the_same_class_again_is_allowed() -> None:
    registry = EventRegistry()

    class Again(DomainEvent, type_name="test_events.Again", registry=registry):
        pass

    registry.register(Again)
    assert registry.class_for("test_events.Again") is Again


def test_conflict_error_is_an_event_type_error() -> None:
    assert issubclass(EventTypeConflictError, EventTypeError)
    assert issubclass(UnknownEventVersionError, EventTypeError)


@pytest.mark.parametrize("version", [0, -1, True, "2", 1.0])
def test_invalid_version_is_refused(version: Any) -> None:
    with pytest.raises(EventTypeError, match="version must be an int >= 1"):

        class BadVersion(DomainEvent, type_name="test_events.BadVersion", version=version):
            pass


# -- the model --------------------------------------------------------------------------


def test_events_are_immutable() -> None:
    event = Opened(capacity=10)
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        event.capacity = 20  # type: ignore[misc]
    assert event.capacity == 10


def test_extra_fields_are_forbidden() -> None:
    with pytest.raises(pydantic.ValidationError, match="extra"):
        Opened(capacity=1, surprise=True)  # type: ignore[call-arg]


def test_events_compare_by_value() -> None:
    assert Opened(capacity=1) == Opened(capacity=1)
    assert Opened(capacity=1) != Opened(capacity=2)


# -- decoding ---------------------------------------------------------------------------


def test_decode_current_version_takes_the_fast_path() -> None:
    registry = EventRegistry()
    calls: list[int] = []

    class Fast(DomainEvent, type_name="test_events.Fast", version=2, registry=registry):
        size: int

    @upcaster(Fast, from_version=1, registry=registry)
    def count_calls(data: dict[str, Any]) -> dict[str, Any]:
        calls.append(1)
        return data

    event = registry.decode("test_events.Fast", 2, b'{"size": 5}')
    assert event == Fast(size=5)
    assert calls == []  # upcasters only run for older versions


def test_decode_unknown_type() -> None:
    with pytest.raises(UnknownEventTypeError, match=r"test_events\.Nobody") as caught:
        EventRegistry().decode("test_events.Nobody", 1, "{}")
    assert caught.value.type_name == "test_events.Nobody"


class _Chain(DomainEvent, type_name="test_events.Chain", version=3, registry=None):
    """Schema v3: `full_name` (v2 renamed `name`), `source` (added in v3)."""

    full_name: str
    source: str


def _chain_registry(*from_versions: int) -> EventRegistry:
    registry = EventRegistry()
    registry.register(_Chain)
    steps = {1: _rename, 2: _add_source}
    for version in from_versions:
        upcaster("test_events.Chain", from_version=version, registry=registry)(steps[version])
    return registry


def _rename(data: dict[str, Any]) -> dict[str, Any]:
    return {"full_name": data["name"]}


def _add_source(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "source": "legacy"}


def test_upcaster_chain_v1_to_v3() -> None:
    registry = _chain_registry(1, 2)
    assert registry.decode("test_events.Chain", 1, '{"name": "Ada"}') == _Chain(
        full_name="Ada", source="legacy"
    )
    assert registry.decode("test_events.Chain", 2, '{"full_name": "Bob"}') == _Chain(
        full_name="Bob", source="legacy"
    )
    current = '{"full_name": "Cy", "source": "web"}'
    assert registry.decode("test_events.Chain", 3, current) == _Chain(full_name="Cy", source="web")


def test_missing_upcaster_step() -> None:
    registry = _chain_registry(1)
    with pytest.raises(UnknownEventVersionError, match="no upcaster from version 2") as caught:
        registry.decode("test_events.Chain", 1, '{"name": "Ada"}')
    assert (caught.value.stored_version, caught.value.current_version) == (1, 3)


def test_newer_stored_version_than_the_code() -> None:
    registry = _chain_registry(1, 2)
    with pytest.raises(UnknownEventVersionError, match="newer code") as caught:
        registry.decode("test_events.Chain", 4, '{"full_name": "X", "source": "y"}')
    assert (caught.value.stored_version, caught.value.current_version) == (4, 3)


def test_duplicate_upcaster_is_refused() -> None:
    registry = _chain_registry(1)
    registry.register_upcaster("test_events.Chain", 1, _rename)  # the same function: fine
    with pytest.raises(EventTypeError, match="already registered"):
        registry.register_upcaster("test_events.Chain", 1, _add_source)


@pytest.mark.parametrize(
    ("schema_version", "payload", "reason"),
    [
        (3, "{not json", "Invalid JSON"),
        (3, '{"full_name": "A"}', "source"),
        (3, '{"full_name": "A", "source": "b", "extra": 1}', "extra"),
        (3, "[1, 2]", "<root>"),
        (1, "{not json", "invalid JSON"),
        (1, "[1, 2]", "not a JSON object"),
        (2, '{"full_name": 5}', "full_name"),
    ],
)
def test_bad_payload_names_stream_and_version(
    schema_version: int, payload: str, reason: str
) -> None:
    registry = _chain_registry(1, 2)
    with pytest.raises(EventDeserializationError) as caught:
        registry.decode("test_events.Chain", schema_version, payload, "orders-7", 12)
    message = str(caught.value)
    assert "stream 'orders-7' version 12" in message
    assert reason in message
    assert caught.value.type_name == "test_events.Chain"
    assert caught.value.location == "stream 'orders-7' version 12"


@pytest.mark.anyio
async def test_store_read_of_a_bad_payload_names_stream_and_version() -> None:
    store = InMemoryEventStore()
    store.write_raw("room-1", "test_events.Opened", 1, '{"capacity": 1}')
    store.write_raw("room-1", "test_events.Opened", 1, '{"capacity": "many"}')
    with pytest.raises(EventDeserializationError, match="stream 'room-1' version 2"):
        await store.read_stream("room-1")
    assert [r.event for r in await store.read_stream("room-1", to_version=1)] == [
        Opened(capacity=1)
    ]
