"""How the commands print: aligned tables for people, JSON lines for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from eventcore import DeadLetter, LogPosition, Message, ProjectionStatus, RecordedEvent
from eventcore.cli._raw import StoredPayload

__all__ = [
    "dead_letter_row",
    "echo_json",
    "echo_table",
    "event_json",
    "event_line",
    "message_json",
    "one_line",
    "position_text",
    "status_row",
]


def echo_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print `rows` under `headers`, each column as wide as its widest cell."""
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def echo_json(value: Any) -> None:
    """Print `value` as one line of JSON."""
    click.echo(json.dumps(value, ensure_ascii=False, default=str))


def position_text(position: LogPosition) -> str:
    """A log position as people read it: `POSITION`, or `POSITION (tx ID)` on PostgreSQL."""
    tx = f" (tx {position.transaction_id})" if position.transaction_id else ""
    return f"{position.global_position}{tx}"


def event_line(recorded: RecordedEvent) -> str:
    """`position  stream@version  type  payload` for one event."""
    payload = json.dumps(_data(recorded), ensure_ascii=False, separators=(",", ":"))
    where = f"{recorded.stream_id}@{recorded.version}"
    return f"{recorded.global_position}  {where}  {recorded.event_type}  {payload}"


def event_json(recorded: RecordedEvent) -> dict[str, Any]:
    """Everything stored about one event, JSON-ready."""
    return {
        "global_position": recorded.global_position,
        "transaction_id": recorded.transaction_id,
        "stream_id": recorded.stream_id,
        "stream_type": recorded.stream_type,
        "version": recorded.version,
        "event_type": recorded.event_type,
        "schema_version": recorded.schema_version,
        "event_id": str(recorded.event_id),
        "recorded_at": recorded.recorded_at.isoformat(),
        "data": _data(recorded),
        "metadata": recorded.metadata.to_dict(),
    }


def status_row(status: ProjectionStatus) -> list[str]:
    """One projection's row: name, checkpoint, head, pending, lag."""
    return [
        status.name,
        position_text(status.checkpoint),
        str(status.head),
        "yes" if status.pending else "no",
        f"{status.lag_seconds:.1f}s",
    ]


def dead_letter_row(letter: DeadLetter) -> list[str]:
    """One dead letter's row: projector, position, event, attempts, error."""
    return [
        letter.projector,
        position_text(letter.log_position),
        f"{letter.stream_id}@{letter.version}",
        letter.event_type,
        str(letter.attempts),
        letter.parked_at.isoformat(timespec="seconds"),
        letter.error,
    ]


def message_json(message: Message) -> dict[str, Any]:
    """A message's envelope and payload (parsed when it is JSON), JSON-ready."""
    try:
        payload: Any = json.loads(message.payload)
    except ValueError:
        payload = message.payload.decode("utf-8", "replace")
    return {
        "message_id": str(message.message_id),
        "topic": message.topic,
        "key": message.key,
        "type": message.type,
        "schema_version": message.schema_version,
        "headers": dict(message.headers),
        "payload": payload,
    }


def one_line(text: str | None) -> str:
    """`text` with its line breaks and runs of spaces as single spaces (for a table cell)."""
    return " ".join((text or "").split())


def _data(recorded: RecordedEvent) -> Any:
    event = recorded.event
    return event.data if isinstance(event, StoredPayload) else event.model_dump(mode="json")
