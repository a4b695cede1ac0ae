"""JetStream acks for a whole batch, on one reply subscription per connection.

JetStream acknowledges a message published with a reply subject by sending its
`PubAck` (JSON) there. nats-py's `publish_async` does this per message with a future,
a semaphore, a random token and a parsed `PubAck`; `AckInbox` does the same with one
wildcard subscription and a counter: an ack only marks its message's slot in its batch,
and only a refusal is parsed. The server's behaviour is the same: each message is
stored (or refused) and acknowledged on its own.
"""

from __future__ import annotations

import asyncio
import json
from itertools import count

from nats.aio.client import Client
from nats.aio.msg import Msg

__all__ = ["ACKED", "NO_STREAM", "AckInbox", "Batch"]

ACKED = True
"""A message's outcome once JetStream stored it."""
NO_STREAM = "no stream"
"""A message's outcome when no stream captures its subject (no responders)."""

_STATUS = "Status"
_NO_RESPONDERS = "503"


class Batch:
    """The acks awaited for one `publish` call's messages.

    `outcomes[i]` is `None` until message `i` is sent, `False` while its ack is
    awaited, then `ACKED`, `NO_STREAM`, or why it failed.
    """

    __slots__ = ("_awaited", "_done", "_sending", "_tokens", "outcomes")

    def __init__(self, size: int) -> None:
        self.outcomes: list[bool | str | None] = [None] * size
        self._tokens: list[str] = []
        self._awaited = 0
        self._sending = True
        self._done = asyncio.get_running_loop().create_future()

    def fail(self, index: int, reason: str) -> None:
        """Message `index` failed without an ack (NATS refused to send it)."""
        if self.outcomes[index] is False:
            self._awaited -= 1
        self.outcomes[index] = reason

    async def wait(self) -> None:
        """Once every message is sent: until each has its outcome."""
        self._sending = False
        self._complete()
        await asyncio.shield(self._done)

    def _await(self, index: int, token: str) -> None:
        self.outcomes[index] = False
        self._tokens.append(token)
        self._awaited += 1

    def _settle(self, index: int, outcome: bool | str) -> None:
        if self.outcomes[index] is False:
            self.outcomes[index] = outcome
            self._awaited -= 1
            self._complete()

    def _complete(self) -> None:
        # Not while sending: acks of the first messages may all be in before the rest go.
        if not self._sending and not self._awaited and not self._done.done():
            self._done.set_result(None)


class AckInbox:
    """One connection's subscription to the acks of everything its publisher sends."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._tokens = map(str, count())
        self._waiting: dict[str, tuple[Batch, int]] = {}

    @classmethod
    async def open(cls, client: Client) -> AckInbox:
        """Subscribe to a new inbox's `*` on `client` (for as long as it is connected)."""
        inbox = cls(f"{client.new_inbox()}.")

        async def on_reply(msg: Msg) -> None:
            inbox._on_reply(msg)

        await client.subscribe(f"{inbox._prefix}*", cb=on_reply)
        return inbox

    def reply_to(self, batch: Batch, index: int) -> str:
        """The reply subject for message `index` of `batch`, which now awaits its ack."""
        token = next(self._tokens)
        self._waiting[token] = (batch, index)
        batch._await(index, token)
        return self._prefix + token

    def forget(self, batch: Batch) -> None:
        """Stop waiting for `batch`'s acks (late ones are ignored)."""
        waiting = self._waiting
        for token in batch._tokens:
            waiting.pop(token, None)

    def _on_reply(self, msg: Msg) -> None:
        entry = self._waiting.pop(msg.subject[len(self._prefix) :], None)
        if entry is not None:
            batch, index = entry
            batch._settle(index, _outcome(msg))


def _outcome(msg: Msg) -> bool | str:
    if msg.headers and msg.headers.get(_STATUS) == _NO_RESPONDERS:
        return NO_STREAM
    data = msg.data
    if b'"error"' not in data:  # a PubAck: only a refusal is worth parsing
        return ACKED
    try:
        answer = json.loads(data)
    except ValueError:
        return f"JetStream answered with something other than an ack: {data[:200]!r}"
    error = answer.get("error") if isinstance(answer, dict) else None
    if not isinstance(error, dict):
        return ACKED  # "error" was only in a name (a stream called "error", say)
    return f"JetStream refused it: {error.get('description')} (code {error.get('code')})"
