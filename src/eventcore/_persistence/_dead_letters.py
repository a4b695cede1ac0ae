"""`DeadLetter`: an event a projector could not handle, parked until replayed or discarded."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from eventcore._domain._metadata import LogPosition, RecordedEvent

__all__ = ["DeadLetter"]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event parked for one projector: where it is in the log, and why it is parked.

    `attempts` counts how many times the projector's handler failed on it: the worker's
    tries when it parked the event, plus one per failed replay. It is 0 for an event
    that never ran because an earlier event of its stream is parked (a projector with
    `ordered=True`).
    """

    projector: str
    event_id: uuid.UUID
    stream_id: str
    version: int
    event_type: str
    transaction_id: int
    global_position: int
    error: str
    attempts: int
    parked_at: datetime

    @property
    def log_position(self) -> LogPosition:
        """Where the parked event stands in the global log."""
        return LogPosition(self.transaction_id, self.global_position)

    @classmethod
    def of(
        cls, projector: str, recorded: RecordedEvent, error: str, attempts: int, at: datetime
    ) -> DeadLetter:
        """The dead letter of `recorded` for `projector`."""
        return cls(
            projector,
            recorded.event_id,
            recorded.stream_id,
            recorded.version,
            recorded.event_type,
            recorded.transaction_id,
            recorded.global_position,
            error,
            attempts,
            at,
        )
