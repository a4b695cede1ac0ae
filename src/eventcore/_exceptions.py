"""Every error eventcore raises derives from [`EventcoreError`][eventcore.EventcoreError].

The tree:

```text
EventcoreError
├── EventTypeError                       an event class or stored event type is not usable
│   ├── EventTypeConflictError           two classes claim one stable type name
│   ├── UnknownEventTypeError            a stored type name no class is registered for
│   ├── UnknownEventVersionError         a stored schema version with no upcaster path
│   └── IntegrationEventError            an integration event or mapping is declared wrongly
├── EventDeserializationError            a stored payload does not fit its event class
├── InvalidEventError                    an event cannot be stored as given
│   ├── InvalidStreamIdError             empty, too long or has control characters
│   └── PayloadTooLargeError             the encoded payload exceeds the store's limit
├── ConcurrencyError                     optimistic concurrency failed; retrying may help
│   ├── WrongExpectedVersionError        names stream, expected and actual version
│   │   ├── AggregateExistsError         Repository.add() of an id that is taken
│   │   └── PreconditionFailedError      the version a request's If-Match named is not current
│   └── DuplicateEventError              some, not all, event ids of an append exist already
├── PreconditionRequiredError            a write that must name the version it expects did not
├── IdempotencyError                     an idempotency key cannot be used as sent
│   ├── IdempotencyKeyError              missing where required, or malformed
│   ├── IdempotencyKeyReusedError        the key was used before, for another request
│   └── IdempotencyKeyInFlightError      a request with the key is still being handled
├── AggregateNotFoundError               no events for that aggregate id (or before that point)
├── AggregateError                       an aggregate class or instance is misused
├── UnitOfWorkError                      a unit of work is used outside its life cycle
├── MessagingError                       publishing or consuming integration messages failed
│   ├── PublishError                     the broker refused or did not confirm a publish
│   ├── BrokerConnectionError            the broker is unreachable or the connection dropped
│   ├── MessageDecodeError               a received message does not fit its contract
│   └── ConsumerError                    a consumer is declared wrongly or keeps failing
├── PersonalDataError                    personal data is declared wrongly or cannot be protected
│   ├── KeyProviderError                 the key-encryption key is missing, wrong or unreachable
│   └── TamperedDataError                an encrypted value or snapshot fails its authentication
├── ProjectionError                      a projector is declared wrongly or keeps failing
│   ├── CatchUpTimeoutError              a projection did not reach a position in time
│   ├── LeaseLostError                   this process no longer holds a projector's lease
│   └── ProcessManagerError              a process manager is misdeclared or keeps failing
└── StoreError                           the storage backend failed
    ├── StoreConnectionError             the connection was closed, dropped or unreachable
    ├── SchemaError                      the event tables are missing or not as expected
    └── UnsupportedBackendError          a SQLAlchemy dialect/driver eventcore cannot drive
```

Errors that name one bad value are also `ValueError`s, so generic handlers catch them.
"""

from __future__ import annotations

__all__ = [
    "AggregateError",
    "AggregateExistsError",
    "AggregateNotFoundError",
    "BrokerConnectionError",
    "CatchUpTimeoutError",
    "ConcurrencyError",
    "ConsumerError",
    "DuplicateEventError",
    "EventDeserializationError",
    "EventTypeConflictError",
    "EventTypeError",
    "EventcoreError",
    "IdempotencyError",
    "IdempotencyKeyError",
    "IdempotencyKeyInFlightError",
    "IdempotencyKeyReusedError",
    "IntegrationEventError",
    "InvalidEventError",
    "InvalidStreamIdError",
    "KeyProviderError",
    "LeaseLostError",
    "MessageDecodeError",
    "MessagingError",
    "PayloadTooLargeError",
    "PersonalDataError",
    "PreconditionFailedError",
    "PreconditionRequiredError",
    "ProcessManagerError",
    "ProjectionError",
    "PublishError",
    "SchemaError",
    "StoreConnectionError",
    "StoreError",
    "TamperedDataError",
    "UnitOfWorkError",
    "UnknownEventTypeError",
    "UnknownEventVersionError",
    "UnsupportedBackendError",
    "WrongExpectedVersionError",
]


class EventcoreError(Exception):
    """Base class of every error raised by eventcore."""


class EventTypeError(EventcoreError):
    """An event class, or a stored event's type, cannot be used."""


class EventTypeConflictError(EventTypeError):
    """Two different classes were registered under the same stable event type name."""

    def __init__(self, type_name: str, existing: type, new: type) -> None:
        self.type_name = type_name
        super().__init__(
            f"event type name {type_name!r} is already registered to "
            f"{existing.__module__}.{existing.__qualname__}; cannot register "
            f"{new.__module__}.{new.__qualname__} too (pass a distinct type_name=...)"
        )


class UnknownEventTypeError(EventTypeError):
    """A stored event names a type that no event class is registered for."""

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name
        super().__init__(
            f"no event class is registered for stored event type {type_name!r}; "
            "import the module that defines it, or register an alias for a renamed class"
        )


class UnknownEventVersionError(EventTypeError):
    """A stored event has a schema version the code cannot turn into the current one."""

    def __init__(self, type_name: str, stored: int, current: int, reason: str) -> None:
        self.type_name = type_name
        self.stored_version = stored
        self.current_version = current
        super().__init__(
            f"cannot read {type_name!r} schema version {stored} "
            f"(the code is at version {current}): {reason}"
        )


class EventDeserializationError(EventcoreError):
    """A stored payload could not be decoded into its event class."""

    def __init__(self, type_name: str, location: str, reason: str) -> None:
        self.type_name = type_name
        self.location = location
        super().__init__(f"cannot decode {type_name!r} at {location}: {reason}")


class InvalidEventError(EventcoreError, ValueError):
    """An event cannot be stored as given; nothing was written."""


class InvalidStreamIdError(InvalidEventError):
    """A stream id is empty, too long or contains control characters."""

    def __init__(self, stream_id: object, reason: str) -> None:
        self.stream_id = stream_id
        super().__init__(f"invalid stream id {stream_id!r}: {reason}")


class PayloadTooLargeError(InvalidEventError):
    """An encoded event payload exceeds the store's configured size limit."""

    def __init__(self, stream_id: str, type_name: str, size: int, limit: int) -> None:
        self.stream_id = stream_id
        self.type_name = type_name
        self.size = size
        self.limit = limit
        super().__init__(
            f"event {type_name!r} for stream {stream_id!r} encodes to {size} bytes, "
            f"over the limit of {limit} bytes"
        )


class ConcurrencyError(EventcoreError):
    """Optimistic concurrency control rejected a write; reload and retry may succeed."""


class WrongExpectedVersionError(ConcurrencyError):
    """The stream is not at the version the writer expected."""

    def __init__(self, stream_id: str, expected: object, actual: int, message: str = "") -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        if not message and str(expected) in ("0", "NO_STREAM") and actual > 0:
            message = (
                f"stream {stream_id!r} exists already (at version {actual}); the append "
                "expected a new stream (version 0). To change an existing aggregate, load it "
                "with Repository.get() and save() it"
            )
        super().__init__(
            message or f"stream {stream_id!r}: expected version {expected}, actual version {actual}"
        )


class AggregateExistsError(WrongExpectedVersionError):
    """`Repository.add` was given an aggregate whose id is taken: its stream exists."""

    def __init__(self, aggregate_type: str, aggregate_id: str, actual: int) -> None:
        self.aggregate_type = aggregate_type
        self.aggregate_id = aggregate_id
        super().__init__(
            aggregate_id,
            0,
            actual,
            f"{aggregate_type} {aggregate_id!r} exists already (at version {actual}): add() "
            "is for new aggregates; load the existing one with get() and save() it",
        )


class PreconditionFailedError(WrongExpectedVersionError):
    """A request's precondition (`If-Match`, `If-None-Match`) does not hold for its stream.

    Raised where the version a client said it expects is not the stream's version, when
    the request was read or at its commit; answered with 412 over HTTP.
    """

    def __init__(
        self, stream_id: str, expected: object, actual: int, header: str = "If-Match"
    ) -> None:
        super().__init__(stream_id, expected, actual)
        self.header = header
        self.args = (
            f"stream {stream_id!r}: {header} expected version {expected}, actual version {actual}",
        )


class PreconditionRequiredError(EventcoreError):
    """A write that must say which version it expects (`If-Match`) came without it."""

    def __init__(self, header: str = "If-Match") -> None:
        self.header = header
        super().__init__(f"this request must carry {header} with the version it expects")


class DuplicateEventError(ConcurrencyError):
    """Some, but not all, of an append's event ids are stored already (or elsewhere)."""

    def __init__(self, stream_id: str, event_ids: list[str], reason: str) -> None:
        self.stream_id = stream_id
        self.event_ids = event_ids
        super().__init__(f"stream {stream_id!r}: event ids {event_ids} {reason}")


class AggregateNotFoundError(EventcoreError, LookupError):
    """No events exist for the aggregate (at the requested version or time)."""

    def __init__(self, aggregate_type: str, aggregate_id: str, detail: str = "") -> None:
        self.aggregate_type = aggregate_type
        self.aggregate_id = aggregate_id
        suffix = f" {detail}" if detail else ""
        super().__init__(f"{aggregate_type} {aggregate_id!r} not found{suffix}")


class IdempotencyError(EventcoreError):
    """An idempotency key cannot be used as it was sent; nothing was done."""


class IdempotencyKeyError(IdempotencyError, ValueError):
    """An idempotency key is missing where one is required, or is malformed."""


class IdempotencyKeyReusedError(IdempotencyError):
    """The idempotency key was used before with another request (another payload)."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(
            f"idempotency key {key!r} was used before for another request; "
            "use a new key for a new request"
        )


class IdempotencyKeyInFlightError(IdempotencyError):
    """A request with the same idempotency key is still being handled; retry later."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"a request with idempotency key {key!r} is still being handled")


class AggregateError(EventcoreError):
    """An aggregate class is declared wrongly, or an aggregate instance is misused."""


class UnitOfWorkError(EventcoreError):
    """A unit of work was used outside its `async with` block, or after it committed."""


class IntegrationEventError(EventTypeError):
    """An integration event class, or a mapping from domain events, is declared wrongly."""


class MessagingError(EventcoreError):
    """Publishing integration messages to a broker, or consuming them, failed."""


class PublishError(MessagingError):
    """The broker refused a message or did not confirm it in time.

    The outbox keeps the message and the relay retries it (with backoff), so nothing
    is lost; the broker may receive it twice, which consumers' inboxes absorb.
    """


class BrokerConnectionError(MessagingError):
    """The broker could not be reached, or the connection to it dropped."""


class MessageDecodeError(MessagingError, ValueError):
    """A received message lacks an envelope header or its payload does not fit its
    integration event class; it names the message id, the type and what was wrong."""


class ConsumerError(MessagingError):
    """A consumer is declared wrongly, or a message kept failing and was given up on."""


class PersonalDataError(EventcoreError):
    """Personal data is marked wrongly on an event class, or cannot be stored protected.

    Raised, for instance, when an event with personal data fields is appended to a
    store that has no key provider (it would be written in clear text), or when the
    `cryptography` package (`eventcore-es[personal-data]`) is not installed.
    """


class KeyProviderError(PersonalDataError):
    """The key-encryption key is missing, malformed, or its provider cannot be reached.

    Nothing was written: data keys are wrapped before any event that uses them is.
    """


class TamperedDataError(PersonalDataError):
    """An encrypted value (or snapshot) failed its authentication: it was altered, or
    moved to another event or field. It names where it was found."""

    def __init__(self, where: str, detail: str = "") -> None:
        self.where = where
        suffix = f": {detail}" if detail else ""
        super().__init__(f"encrypted personal data at {where} fails authentication{suffix}")


class ProjectionError(EventcoreError):
    """A projector is declared wrongly, or failed on an event and gave up (it stopped)."""


class CatchUpTimeoutError(ProjectionError, TimeoutError):
    """A projection did not process the log up to the awaited position in time."""


class LeaseLostError(ProjectionError):
    """This process lost a projector's lease (or another worker moved its checkpoint).

    The batch in progress is rolled back, never applied twice; a
    [`ProjectionWorker`][eventcore.ProjectionWorker] then competes for the lease again.
    """


class ProcessManagerError(ProjectionError):
    """A process manager is declared or used wrongly, or failed on events and gave up.

    A [`ProcessManagerWorker`][eventcore.ProcessManagerWorker] follows the log like a
    projection worker, so when a batch still fails after its retries it stops with
    this error (a `ProjectionError`), its checkpoint before the batch.
    """


class StoreError(EventcoreError):
    """The storage backend failed in a way that is not the caller's input."""


class StoreConnectionError(StoreError):
    """The database connection was closed, dropped or could not be made.

    Appends are atomic, so a write interrupted by this error either committed fully or
    not at all; retrying the same append (same event ids) is safe and idempotent.
    """


class SchemaError(StoreError):
    """The event store tables are missing or do not have the expected shape."""


class UnsupportedBackendError(StoreError):
    """The SQLAlchemy engine uses a dialect or driver that eventcore does not support."""
