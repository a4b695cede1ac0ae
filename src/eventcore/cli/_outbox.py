"""`eventcore outbox ...`: the outbox's backlog, the relays' lanes and dead messages."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

import click

from eventcore import OutboxEntry, OutboxStatus
from eventcore._messaging._outbox import LANES
from eventcore.cli._connection import Settings, open_store, pass_settings
from eventcore.cli._output import echo_json, echo_table, message_json, one_line
from eventcore.cli._running import run

__all__ = ["as_json_option", "outbox", "when"]

_Lanes = dict[int, tuple[str, datetime]]
_Relays = dict[str, tuple[list[int], datetime]]
"""Each relay's lanes and the end of its latest lease."""
_STATUS = ["PENDING", "RETRYING", "DEAD", "SENT", "OLDEST PENDING"]
_RELAYS = ["RELAY", "LANES", "LEASE UNTIL"]
_DEAD = ["MESSAGE ID", "TOPIC", "KEY", "TYPE", "ATTEMPTS", "DEAD AT", "LAST ERROR"]
as_json_option = click.option(
    "--json", "as_json", is_flag=True, help="JSON for scripts and monitoring."
)


@click.group()
def outbox() -> None:
    """The transactional outbox: backlog, relays' lanes, dead messages (no --app needed)."""


@outbox.command()
@as_json_option
@pass_settings
def status(settings: Settings, as_json: bool) -> None:
    """Show the backlog, and which relay owns which lanes.

    PENDING counts the messages not published yet, RETRYING those of them that failed
    before. OLDEST PENDING is how long the oldest unpublished message has waited: the
    figure to alert on. SENT messages are kept until the relays' retention ends (or
    `outbox purge`). Lanes are hashes of the partition keys; each relay owns some
    until its lease runs out ("expired": the relay stalled or died, and another one
    takes them over).
    """

    async def load() -> tuple[OutboxStatus, _Lanes]:
        async with open_store(settings) as store:
            return await store.outbox.status(), await store.outbox.lanes()

    found, lanes = run(load)
    now = datetime.now(UTC)
    relays = _relays(lanes)
    unowned = [lane for lane in range(LANES) if lane not in lanes]
    if as_json:
        echo_json({**_status_json(found), "relays": _relays_json(relays, now),
                   "unowned_lanes": unowned})  # fmt: skip
        return
    age = found.oldest_pending_age
    oldest = "-" if age is None else f"{age.total_seconds():.1f}s"
    echo_table(
        _STATUS, [[*map(str, [found.pending, found.retrying, found.dead, found.sent]), oldest]]
    )
    click.echo()
    if not relays:
        click.echo("no relay owns lanes (none has run, or all stopped)")
        return
    echo_table(_RELAYS, [_relay_row(relay, *owned, now) for relay, owned in relays.items()])
    if unowned:
        click.echo(f"lanes without a relay: {_ranges(unowned)}")


@outbox.command("dead-letters")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="List at most this many.")  # fmt: skip
@as_json_option
@pass_settings
def dead_letters(settings: Settings, limit: int, as_json: bool) -> None:
    """List the messages the relays gave up on, oldest first.

    A relay gives up on a message after max_attempts failed publishes; it then no
    longer holds back the later messages of its partition key. Fix the cause (a
    missing exchange or stream, a permission), then `outbox redrive` them.
    """

    async def load() -> list[OutboxEntry]:
        async with open_store(settings) as store:
            return await store.outbox.dead_letters(limit)

    entries = run(load)
    if as_json:
        for entry in entries:
            echo_json(_entry_json(entry))
    elif entries:
        echo_table(_DEAD, [_entry_row(entry) for entry in entries])
    else:
        click.echo("no dead messages in the outbox")


@outbox.command()
@click.argument("message_ids", nargs=-1, type=click.UUID, metavar="[MESSAGE_ID]...")
@click.option("--all", "everything", is_flag=True, help="Re-drive every dead message.")
@pass_settings
def redrive(settings: Settings, message_ids: tuple[uuid.UUID, ...], everything: bool) -> None:
    """Make dead messages pending again (those named, or --all).

    Their attempts count from 0 again, and a running relay publishes them shortly,
    so they reach the broker after the later messages of their keys that were
    published while they were dead. Exits with status 1 if some of the messages
    named are not dead in the outbox.
    """
    if bool(message_ids) == everything:
        raise click.UsageError("give the MESSAGE_IDs to re-drive, or --all (not both)")
    wanted = None if everything else set(message_ids)

    async def redrive_them() -> int:
        async with open_store(settings) as store:
            return await store.outbox.redrive(wanted)

    count = run(redrive_them)
    click.echo(f"re-drove {count} messages")
    if wanted is not None and count < len(wanted):
        raise click.ClickException(
            f"{len(wanted) - count} of the messages given are not dead in the outbox"
        )


@outbox.command()
@click.option("--dead", is_flag=True, help="Delete the dead messages too.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_settings
def purge(settings: Settings, dead: bool, yes: bool) -> None:
    """Delete the sent messages now.

    The relays delete them after their retention anyway. With --dead, delete the
    dead messages too: they are then never published. Pending messages are never
    deleted. Asks first, unless given --yes.
    """

    async def purge_now() -> int:
        async with open_store(settings) as store:
            found = await store.outbox.status()
            if not found.sent and not (dead and found.dead):
                return 0
            if not yes:
                what = f"{found.sent} sent" + (f" and {found.dead} dead" if dead else "")
                click.confirm(f"Delete {what} messages from the outbox?", abort=True)
            return await store.outbox.purge(dead=dead)

    click.echo(f"deleted {run(purge_now)} messages from the outbox")


def when(moment: datetime | None) -> str:
    """A moment in a table cell: ISO 8601 to the second, or `-`."""
    return "-" if moment is None else moment.isoformat(timespec="seconds")


def _relays(lanes: _Lanes) -> _Relays:
    relays: _Relays = {}
    for lane, (owner, until) in sorted(lanes.items()):
        owned, latest = relays.get(owner, ([], until))
        relays[owner] = ([*owned, lane], max(latest, until))
    return relays


def _relay_row(relay: str, owned: list[int], until: datetime, now: datetime) -> list[str]:
    return [relay, _ranges(owned), when(until) + (" (expired)" if until < now else "")]


def _ranges(lanes: Iterable[int]) -> str:
    """`0-3,7,9-10`: lane numbers, consecutive ones as ranges."""
    spans: list[list[int]] = []
    for lane in lanes:
        if spans and spans[-1][1] == lane - 1:
            spans[-1][1] = lane
        else:
            spans.append([lane, lane])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _status_json(found: OutboxStatus) -> dict[str, object]:
    age = found.oldest_pending_age
    return {
        "pending": found.pending,
        "retrying": found.retrying,
        "dead": found.dead,
        "sent": found.sent,
        "oldest_pending_seconds": None if age is None else age.total_seconds(),
    }


def _relays_json(relays: _Relays, now: datetime) -> list[dict[str, object]]:
    return [
        {"relay_id": relay, "lanes": owned, "lease_until": until.isoformat(),
         "expired": until < now}
        for relay, (owned, until) in relays.items()
    ]  # fmt: skip


def _entry_row(entry: OutboxEntry) -> list[str]:
    m = entry.message
    return [
        str(m.message_id), m.topic, m.key, m.type, str(entry.attempts),
        when(entry.dead_at), one_line(entry.last_error),
    ]  # fmt: skip


def _entry_json(entry: OutboxEntry) -> dict[str, object]:
    return {
        **message_json(entry.message),
        "created_at": entry.message.created_at.isoformat(),
        "attempts": entry.attempts,
        "last_error": entry.last_error,
        "dead_at": None if entry.dead_at is None else entry.dead_at.isoformat(),
    }
