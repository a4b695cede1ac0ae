"""How `NatsPublisher` matches JetStream's acks to the messages of a batch (no server:
the replies are built here as nats-py delivers them)."""

from __future__ import annotations

from typing import Any, cast

import anyio
import pytest
from nats.aio.msg import Msg

from eventcore.nats._acks import ACKED, NO_STREAM, AckInbox, Batch

pytestmark = pytest.mark.anyio

_PREFIX = "_INBOX.test."


def inbox() -> AckInbox:
    return AckInbox(_PREFIX)


def reply(subject: str, data: bytes, headers: dict[str, str] | None = None) -> Msg:
    return Msg(cast(Any, None), subject=subject, data=data, headers=headers)


async def test_each_ack_settles_its_own_message() -> None:
    acks, batch = inbox(), Batch(3)
    subjects = [acks.reply_to(batch, i) for i in range(3)]
    assert len(set(subjects)) == 3
    assert all(s.startswith(_PREFIX) and "." not in s[len(_PREFIX) :] for s in subjects)
    acks._on_reply(reply(subjects[2], b'{"stream":"S","seq":9}'))
    acks._on_reply(reply(subjects[0], b'{"stream":"S","seq":7,"duplicate":true}'))
    assert batch.outcomes == [ACKED, False, ACKED]
    with anyio.move_on_after(0.05) as waiting:
        await batch.wait()
    assert waiting.cancelled_caught  # one ack is still missing
    acks._on_reply(reply(subjects[1], b'{"stream":"S","seq":8}'))
    with anyio.fail_after(1):
        await batch.wait()
    assert batch.outcomes == [ACKED] * 3


async def test_acks_of_the_first_messages_do_not_end_the_wait_while_sending() -> None:
    acks, batch = inbox(), Batch(2)
    first = acks.reply_to(batch, 0)
    acks._on_reply(reply(first, b'{"stream":"S","seq":1}'))  # before the second is sent
    second = acks.reply_to(batch, 1)
    with anyio.move_on_after(0.05) as waiting:
        await batch.wait()
    assert waiting.cancelled_caught
    acks._on_reply(reply(second, b'{"stream":"S","seq":2}'))
    with anyio.fail_after(1):
        await batch.wait()
    assert batch.outcomes == [ACKED, ACKED]


async def test_a_message_not_sent_is_not_awaited() -> None:
    acks, batch = inbox(), Batch(2)
    acks.reply_to(batch, 0)
    batch.fail(0, "NATS refused to send it: MaxPayloadError")
    acks._on_reply(reply(acks.reply_to(batch, 1), b'{"stream":"S","seq":1}'))
    with anyio.fail_after(1):
        await batch.wait()
    assert batch.outcomes == ["NATS refused to send it: MaxPayloadError", ACKED]


async def test_refusals_and_missing_streams_say_why() -> None:
    acks, batch = inbox(), Batch(3)
    subjects = [acks.reply_to(batch, i) for i in range(3)]
    refusal = b'{"error":{"code":400,"err_code":10054,"description":"message too big"}}'
    acks._on_reply(reply(subjects[0], refusal))
    acks._on_reply(reply(subjects[1], b"", {"Status": "503"}))
    acks._on_reply(reply(subjects[2], b"not json, not an ack"))
    first, second, third = batch.outcomes
    assert first == "JetStream refused it: message too big (code 400)"
    assert second == NO_STREAM
    assert third is ACKED  # no "error" in it: nothing refused


async def test_a_stream_called_error_is_not_a_refusal() -> None:
    acks, batch = inbox(), Batch(2)
    subjects = [acks.reply_to(batch, i) for i in range(2)]
    acks._on_reply(reply(subjects[0], b'{"stream":"error","seq":1}'))
    acks._on_reply(reply(subjects[1], b'{"stream":"error" broken'))
    assert batch.outcomes[0] is ACKED
    assert "something other than an ack" in str(batch.outcomes[1])


async def test_late_duplicate_and_foreign_replies_are_ignored() -> None:
    acks, late, current = inbox(), Batch(1), Batch(1)
    stale = acks.reply_to(late, 0)
    acks.forget(late)  # its publish gave up (a timeout)
    acks._on_reply(reply(stale, b'{"stream":"S","seq":1}'))
    assert late.outcomes == [False]

    subject = acks.reply_to(current, 0)
    acks._on_reply(reply(subject, b'{"stream":"S","seq":2}'))
    acks._on_reply(reply(subject, b'{"error":{"code":500,"description":"late"}}'))
    acks._on_reply(reply(f"{_PREFIX}999999", b'{"stream":"S","seq":3}'))
    assert current.outcomes == [ACKED]
    assert not acks._waiting  # nothing kept for replies that never come
