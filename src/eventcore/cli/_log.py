"""`eventcore log tail`: print the global log in commit order, and follow it."""

from __future__ import annotations

import click

from eventcore import EventStore, LogPosition, RecordedEvent, Subscription
from eventcore.cli._connection import Settings, open_store, pass_settings
from eventcore.cli._horizon import wait_until_readable_noting
from eventcore.cli._output import echo_json, event_json, event_line
from eventcore.cli._raw import RawRegistry
from eventcore.cli._running import run, until_signalled

__all__ = ["log"]


def _start_option(ctx: click.Context, param: click.Parameter, value: str) -> int | str:
    """`--after`: a global position (an int >= 0) or `head`."""
    if value == "head":
        return value
    try:
        position = int(value)
    except ValueError:
        position = -1
    if position < 0:
        raise click.BadParameter(f"{value!r} is neither a global position (>= 0) nor 'head'")
    return position


@click.group()
def log() -> None:
    """Read the global log."""


@log.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events until Ctrl-C.")
@click.option(
    "--after",
    callback=_start_option,
    metavar="POSITION|head",
    default="0",
    show_default=True,
    help="Start after the event at this global position (0: the beginning; "
    "'head': only events appended from now on).",
)
@click.option("-n", "--limit", type=click.IntRange(min=1), help="Stop after this many events.")
@click.option("--type", "types", multiple=True, metavar="TYPE", help="Only this event type.")
@click.option("--stream-type", "stream_types", multiple=True, help="Only this stream type.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event.")
@pass_settings
def tail(
    settings: Settings,
    follow: bool,
    after: int | str,
    limit: int | None,
    types: tuple[str, ...],
    stream_types: tuple[str, ...],
    as_json: bool,
) -> None:
    """Print events in commit order: position, stream@version, type, payload.

    Payloads are printed as stored (no event classes are needed, nothing is
    upcast). Without --follow it stops at the end of the log (every event committed
    before it started); with it, it waits for new events until interrupted (Ctrl-C,
    SIGTERM) or --limit is reached. --type and --stream-type can be repeated.
    """

    async def tail_log() -> None:
        async with open_store(settings, registry=RawRegistry(), keys=False) as store:
            start = await _start(store, after)
            if not follow:
                await wait_until_readable_noting(store)  # "the end" is the head as of now
            subscription = Subscription(
                store,
                after=start,
                batch_size=min(limit or 500, 500),
                event_types=types or None,
                stream_types=stream_types or None,
            )
            printer = _Printer(limit, as_json)
            async with subscription:
                await until_signalled(lambda: _print_log(subscription, printer, follow))

    run(tail_log)


class _Printer:
    def __init__(self, limit: int | None, as_json: bool) -> None:
        self.left = limit
        self.as_json = as_json

    def done(self) -> bool:
        return self.left is not None and self.left <= 0

    def print(self, batch: list[RecordedEvent]) -> None:
        for recorded in batch[: self.left]:
            if self.as_json:
                echo_json(event_json(recorded))
            else:
                click.echo(event_line(recorded))
        if self.left is not None:
            self.left -= len(batch)


async def _print_log(subscription: Subscription, printer: _Printer, follow: bool) -> None:
    while not printer.done():
        batch = await subscription.read()
        if batch:
            printer.print(batch)
        elif follow:
            await subscription.idle()
        else:
            return


async def _start(store: EventStore, after: int | str) -> LogPosition:
    position = await store.log_head() if after == "head" else int(after)
    if position == 0:
        return LogPosition()
    found = await store.log_position_of(position)
    if found is None:
        raise click.ClickException(f"no event at global position {position} (try 0 or 'head')")
    return found
