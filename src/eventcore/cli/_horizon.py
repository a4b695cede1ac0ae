"""Waiting until the log is readable up to its head as of now (PostgreSQL's horizon).

On PostgreSQL the log is read only below the oldest transaction still open, anywhere
on the server: right after a commit, or while a transaction stays open, the newest
events are not readable yet. Commands that stop at "the end of the log" first wait
until everything committed before they started is readable.
"""

from __future__ import annotations

import anyio
import click

from eventcore import EventStore, LogPosition

__all__ = ["wait_until_readable"]

_NOTE_AFTER = 2.0  # seconds of waiting before saying why


async def wait_until_readable(store: EventStore) -> None:
    """Return once every event committed so far can be read from the log."""
    head = await store.log_head()
    target = await store.log_position_of(head) if head else None
    if target is None:
        return
    before = LogPosition(target.transaction_id, target.global_position - 1)
    delay, waited, noted = 0.005, 0.0, False
    while not await store.read_log(before, limit=1):
        if waited >= _NOTE_AFTER and not noted:
            click.echo(
                "waiting for transactions still open on the server: the log is readable "
                "only up to the oldest of them",
                err=True,
            )
            noted = True
        await anyio.sleep(delay)
        waited += delay
        delay = min(delay * 2, 0.1)
