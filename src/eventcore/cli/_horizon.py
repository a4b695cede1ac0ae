"""Waiting until the log is readable up to its end as of now (PostgreSQL's horizon).

On PostgreSQL the log is read only below the oldest transaction still open, anywhere
on the server: right after a commit, or while a transaction stays open, the newest
events are not readable yet. Commands that stop at "the end of the log" first wait
until everything committed before they started is readable, and say what they wait
for when it takes a while.
"""

from __future__ import annotations

import click

from eventcore import CatchUpTimeoutError, SqlAlchemyEventStore, wait_until_readable

__all__ = ["wait_until_readable_noting"]

_NOTE_AFTER = 2.0  # seconds of waiting before saying why


async def wait_until_readable_noting(store: SqlAlchemyEventStore) -> None:
    """Return once every event committed so far can be read from the log."""
    end = await store.log_end()
    try:
        await wait_until_readable(store, end, timeout=_NOTE_AFTER)
        return
    except CatchUpTimeoutError as error:
        click.echo(f"waiting, since {error}", err=True)
    await wait_until_readable(store, end, timeout=float("inf"))
