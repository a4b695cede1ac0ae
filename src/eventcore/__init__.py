"""eventcore: async event sourcing and Domain-Driven Design for Python.

The public API is re-exported here; the `_modules` behind it are private. Layers, from
the inside out (each imports only from those before it):

1. domain (`_domain`): events, metadata, aggregates. Standard library and pydantic only.
2. persistence (`_persistence`, `_sqlalchemy`): the event store interface and backends.
   Messaging (`_messaging`): the message envelope, broker protocols, the outbox interface.
3. application (`_application`): repositories, the unit of work, projections, the outbox
   relay and consumers.
4. adapters (`eventcore.rabbitmq`, `eventcore.nats`, `eventcore.cli`, `eventcore.fastapi`):
   optional extras.

Encrypting personal data needs the `personal-data` extra (the `cryptography` package);
`import eventcore` does not.
"""

from __future__ import annotations

from eventcore._application._consumer import Consumer, ConsumerContext, ConsumerWorker, handles
from eventcore._application._horizon import CatchUpResult, wait_until_readable
from eventcore._application._process_manager import ProcessContext, ProcessManager, reacts
from eventcore._application._process_worker import ProcessManagerWorker
from eventcore._application._projection_status import ProjectionStatus, wait_for_projection
from eventcore._application._projection_worker import ProjectionWorker
from eventcore._application._projector import OnFailure, ProjectionContext, Projector, projects
from eventcore._application._rebuild import RebuildProgress, active_version
from eventcore._application._relay import OutboxRelay, RelayMetrics
from eventcore._application._replay import ReplayResult, replay_dead_letters
from eventcore._application._repository import Repository
from eventcore._application._retry import retry_on_conflict
from eventcore._application._subscription import Subscription
from eventcore._application._unit_of_work import UnitOfWork
from eventcore._domain._aggregate import Aggregate, apply
from eventcore._domain._events import (
    DomainEvent,
    EventRegistry,
    Upcaster,
    default_registry,
    upcaster,
)
from eventcore._domain._forgotten import SubjectForgotten
from eventcore._domain._integration import IntegrationEvent, IntegrationMapping, translates
from eventcore._domain._metadata import (
    EventMetadata,
    LogPosition,
    MessageContext,
    NewEvent,
    RecordedEvent,
    caused_by,
    current_context,
    message_context,
    new_event_id,
)
from eventcore._domain._personal import DataSubjectId, PersonalData
from eventcore._exceptions import (
    AggregateError,
    AggregateExistsError,
    AggregateNotFoundError,
    BrokerConnectionError,
    CatchUpTimeoutError,
    ConcurrencyError,
    ConsumerError,
    DuplicateEventError,
    EventcoreError,
    EventDeserializationError,
    EventTypeConflictError,
    EventTypeError,
    IdempotencyError,
    IdempotencyKeyError,
    IdempotencyKeyInFlightError,
    IdempotencyKeyReusedError,
    IntegrationEventError,
    InvalidEventError,
    InvalidStreamIdError,
    KeyProviderError,
    LeaseLostError,
    MessageDecodeError,
    MessagingError,
    PayloadTooLargeError,
    PersonalDataError,
    PreconditionFailedError,
    PreconditionRequiredError,
    ProcessManagerError,
    ProjectionError,
    PublishError,
    SchemaError,
    StoreConnectionError,
    StoreError,
    TamperedDataError,
    UnitOfWorkError,
    UnknownEventTypeError,
    UnknownEventVersionError,
    UnsupportedBackendError,
    WrongExpectedVersionError,
)
from eventcore._messaging._broker import Delivery, MessageSource, Publisher, PublishResult
from eventcore._messaging._encoding import decode_event, message_for
from eventcore._messaging._memory import InMemoryBroker, InMemoryQueue
from eventcore._messaging._message import Message, MessageHeaders
from eventcore._messaging._outbox import Outbox, OutboxEntry, OutboxStatus
from eventcore._persistence._data_keys import DataKey, DataKeyStore, InMemoryDataKeyStore
from eventcore._persistence._dead_letters import DeadLetter
from eventcore._persistence._deadlines import Deadline
from eventcore._persistence._idempotency import (
    IdempotencyRecord,
    IdempotencyStore,
    InMemoryIdempotencyStore,
)
from eventcore._persistence._key_providers import KeyProvider, LocalKeyProvider
from eventcore._persistence._leases import InProcessLeases, ProjectionLease, ProjectionLeases
from eventcore._persistence._memory import InMemoryEventStore
from eventcore._persistence._personal_data import PersonalDataKeys
from eventcore._persistence._signal import AppendSignal
from eventcore._persistence._snapshots import InMemorySnapshotStore, Snapshot, SnapshotStore
from eventcore._persistence._store import (
    AppendResult,
    BeforeCommit,
    EventStore,
    EventStoreSession,
    ExpectedVersion,
    StreamAppend,
)
from eventcore._sqlalchemy._data_keys import SqlAlchemyDataKeyStore
from eventcore._sqlalchemy._engines import postgres_engine, sqlite_engine
from eventcore._sqlalchemy._idempotency import SqlAlchemyIdempotencyStore
from eventcore._sqlalchemy._inbox import InboxDeadLetter, SqlAlchemyInbox
from eventcore._sqlalchemy._outbox import SqlAlchemyOutbox
from eventcore._sqlalchemy._projection_leases import PostgresLeases
from eventcore._sqlalchemy._schema import EventStoreTables, create_schema
from eventcore._sqlalchemy._snapshots import SqlAlchemySnapshotStore
from eventcore._sqlalchemy._store import SqlAlchemyEventStore
from eventcore._sqlalchemy._store_session import SqlAlchemySession

__version__ = "0.1.0"

__all__ = [
    "Aggregate",
    "AggregateError",
    "AggregateExistsError",
    "AggregateNotFoundError",
    "AppendResult",
    "AppendSignal",
    "BeforeCommit",
    "BrokerConnectionError",
    "CatchUpResult",
    "CatchUpTimeoutError",
    "ConcurrencyError",
    "Consumer",
    "ConsumerContext",
    "ConsumerError",
    "ConsumerWorker",
    "DataKey",
    "DataKeyStore",
    "DataSubjectId",
    "DeadLetter",
    "Deadline",
    "Delivery",
    "DomainEvent",
    "DuplicateEventError",
    "EventDeserializationError",
    "EventMetadata",
    "EventRegistry",
    "EventStore",
    "EventStoreSession",
    "EventStoreTables",
    "EventTypeConflictError",
    "EventTypeError",
    "EventcoreError",
    "ExpectedVersion",
    "IdempotencyError",
    "IdempotencyKeyError",
    "IdempotencyKeyInFlightError",
    "IdempotencyKeyReusedError",
    "IdempotencyRecord",
    "IdempotencyStore",
    "InMemoryBroker",
    "InMemoryDataKeyStore",
    "InMemoryEventStore",
    "InMemoryIdempotencyStore",
    "InMemoryQueue",
    "InMemorySnapshotStore",
    "InProcessLeases",
    "InboxDeadLetter",
    "IntegrationEvent",
    "IntegrationEventError",
    "IntegrationMapping",
    "InvalidEventError",
    "InvalidStreamIdError",
    "KeyProvider",
    "KeyProviderError",
    "LeaseLostError",
    "LocalKeyProvider",
    "LogPosition",
    "Message",
    "MessageContext",
    "MessageDecodeError",
    "MessageHeaders",
    "MessageSource",
    "MessagingError",
    "NewEvent",
    "OnFailure",
    "Outbox",
    "OutboxEntry",
    "OutboxRelay",
    "OutboxStatus",
    "PayloadTooLargeError",
    "PersonalData",
    "PersonalDataError",
    "PersonalDataKeys",
    "PostgresLeases",
    "PreconditionFailedError",
    "PreconditionRequiredError",
    "ProcessContext",
    "ProcessManager",
    "ProcessManagerError",
    "ProcessManagerWorker",
    "ProjectionContext",
    "ProjectionError",
    "ProjectionLease",
    "ProjectionLeases",
    "ProjectionStatus",
    "ProjectionWorker",
    "Projector",
    "PublishError",
    "PublishResult",
    "Publisher",
    "RebuildProgress",
    "RecordedEvent",
    "RelayMetrics",
    "ReplayResult",
    "Repository",
    "SchemaError",
    "Snapshot",
    "SnapshotStore",
    "SqlAlchemyDataKeyStore",
    "SqlAlchemyEventStore",
    "SqlAlchemyIdempotencyStore",
    "SqlAlchemyInbox",
    "SqlAlchemyOutbox",
    "SqlAlchemySession",
    "SqlAlchemySnapshotStore",
    "StoreConnectionError",
    "StoreError",
    "StreamAppend",
    "SubjectForgotten",
    "Subscription",
    "TamperedDataError",
    "UnitOfWork",
    "UnitOfWorkError",
    "UnknownEventTypeError",
    "UnknownEventVersionError",
    "UnsupportedBackendError",
    "Upcaster",
    "WrongExpectedVersionError",
    "__version__",
    "active_version",
    "apply",
    "caused_by",
    "create_schema",
    "current_context",
    "decode_event",
    "default_registry",
    "handles",
    "message_context",
    "message_for",
    "new_event_id",
    "postgres_engine",
    "projects",
    "reacts",
    "replay_dead_letters",
    "retry_on_conflict",
    "sqlite_engine",
    "translates",
    "upcaster",
    "wait_for_projection",
    "wait_until_readable",
]
