"""`replay_dead_letters`: hand a consumer the messages it gave up on, once fixed."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from eventcore._application._consumer import Consumer, Handling, database_away
from eventcore._domain._integration import IntegrationMapping
from eventcore._persistence._store import EventStore

__all__ = ["ReplayResult", "replay_dead_letters"]

_log = logging.getLogger("eventcore.consumers")


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a replay of dead letters did, by message id."""

    handled: list[uuid.UUID] = field(default_factory=list)
    """Handled now: they left the dead letters."""
    failed: dict[uuid.UUID, str] = field(default_factory=dict)
    """Failed again (why): they stay dead letters, their attempts and error updated."""
    skipped: dict[uuid.UUID, str] = field(default_factory=dict)
    """Not handled, and why: handled before, or of a type the consumer no longer handles."""


async def replay_dead_letters(
    store: EventStore,
    consumer: Consumer,
    message_ids: Collection[uuid.UUID] | None = None,
    *,
    mappings: Sequence[IntegrationMapping] = (),
) -> ReplayResult:
    """Handle again the messages `consumer` gave up on (all, or those of `message_ids`).

    Run it once the cause is fixed (a bug in the handler, a missing reference row): each
    dead letter, oldest first, is handled as a delivery would be, in its own unit of work
    that records the message in the inbox. A message handled leaves the dead letters;
    one that fails again stays there. A database error stops the replay (raised); what
    was handled until then stays handled.

    ```python
    result = await replay_dead_letters(store, EnrolmentsConsumer())
    assert not result.failed
    ```
    """
    handling = Handling(store, consumer, mappings)
    wanted = None if message_ids is None else set(message_ids)
    result = ReplayResult()
    for letter in await handling.inbox.dead_letters(consumer.name):
        message = letter.message
        if wanted is not None and message.message_id not in wanted:
            continue
        try:
            decoded = handling.decode(message)
            if decoded is None:
                result.skipped[message.message_id] = f"{consumer.name} has no handler for it"
            elif await handling.handle_once(message, *decoded, replaying=True):
                result.handled.append(message.message_id)
            else:
                result.skipped[message.message_id] = "handled before (the inbox has it)"
        except Exception as error:
            if database_away(error):
                raise
            await handling.record_failure(message, error, max_attempts=1)  # stays dead
            result.failed[message.message_id] = repr(error)
            _log.warning(
                "consumer %s: replayed message %s failed again: %r",
                consumer.name, message.message_id, error,
            )  # fmt: skip
    return result
