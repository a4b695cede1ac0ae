"""`eventcore inbox ...`: the messages consumers gave up on."""

from __future__ import annotations

import uuid

import click

from eventcore import InboxDeadLetter, ReplayResult, replay_dead_letters
from eventcore.cli._app import load_consumer
from eventcore.cli._connection import Settings, open_store, pass_settings
from eventcore.cli._outbox import as_json_option, when
from eventcore.cli._output import echo_json, echo_table, message_json, one_line
from eventcore.cli._running import run

__all__ = ["inbox"]

_HEADERS = ["CONSUMER", "MESSAGE ID", "TOPIC", "KEY", "TYPE", "ATTEMPTS", "DEAD AT", "ERROR"]


@click.group()
def inbox() -> None:
    """The consumers' inbox: the messages they gave up on (no --app needed)."""


@inbox.command("dead-letters")
@click.option("--consumer", metavar="NAME", help="Only this consumer's.")
@as_json_option
@pass_settings
def dead_letters(settings: Settings, consumer: str | None, as_json: bool) -> None:
    """List the messages consumers gave up on, oldest first.

    A consumer gives up on a message after its max_attempts failures, or at once when
    the message does not fit its contract (a decode error). The broker has settled
    these messages; the inbox keeps a copy, with the last error.
    """

    async def load() -> list[InboxDeadLetter]:
        async with open_store(settings) as store:
            return await store.inbox.dead_letters(consumer)

    letters = run(load)
    if as_json:
        for letter in letters:
            echo_json(_letter_json(letter))
    elif letters:
        echo_table(_HEADERS, [_letter_row(letter) for letter in letters])
    else:
        click.echo("no dead letters in the inbox")


@inbox.command()
@click.argument("consumer")
@click.argument("message_ids", nargs=-1, required=True, type=click.UUID, metavar="MESSAGE_ID...")
@pass_settings
def discard(settings: Settings, consumer: str, message_ids: tuple[uuid.UUID, ...]) -> None:
    """Forget CONSUMER's dead letters of the MESSAGE_IDs.

    Until then a late redelivery of such a message is skipped; afterwards one is
    handled as a new message. Exits with status 1 if some of the messages named are
    not dead letters of CONSUMER.
    """
    wanted = set(message_ids)

    async def discard_them() -> int:
        async with open_store(settings) as store:
            return await store.inbox.discard(consumer, wanted)

    count = run(discard_them)
    click.echo(f"discarded {count} dead letters of {consumer}")
    if count < len(wanted):
        raise click.ClickException(
            f"{len(wanted) - count} of the messages given are not dead letters of {consumer}"
        )


@inbox.command()
@click.option(
    "--consumer",
    "spec",
    required=True,
    metavar="MODULE:ATTR",
    help="The consumer: a Consumer instance, or a class or function returning one.",
)
@click.argument("message_ids", nargs=-1, type=click.UUID, metavar="[MESSAGE_ID...]")
@click.option("--all", "every", is_flag=True, help="Replay all of the consumer's dead letters.")
@pass_settings
def replay(settings: Settings, spec: str, message_ids: tuple[uuid.UUID, ...], every: bool) -> None:
    """Hand the consumer the MESSAGE_IDs it gave up on (or --all), once the cause is fixed.

    Each runs in its own transaction, as a delivery would, and leaves the dead letters
    when handled; one that fails again stays there. Exits with status 1 if some failed
    or were not handled.
    """
    if every == bool(message_ids):
        raise click.UsageError("give the MESSAGE_IDs to replay, or --all")
    consumer = load_consumer(spec)

    async def replay_them() -> ReplayResult:
        async with open_store(settings) as store:
            return await replay_dead_letters(store, consumer, None if every else message_ids)

    result = run(replay_them)
    click.echo(f"replayed {len(result.handled)} dead letters of {consumer.name}")
    for message_id, reason in {**result.failed, **result.skipped}.items():
        click.echo(f"{message_id}: {one_line(reason)}", err=True)
    missing = set(message_ids) - set(result.handled) - set(result.failed) - set(result.skipped)
    if missing:
        click.echo(f"not dead letters of {consumer.name}: {', '.join(map(str, missing))}", err=True)
    if result.failed or result.skipped or missing:
        raise click.ClickException("some messages were not handled (see above)")


def _letter_row(letter: InboxDeadLetter) -> list[str]:
    m = letter.message
    return [
        letter.consumer, str(m.message_id), m.topic, m.key, m.type,
        str(letter.attempts), when(letter.dead_at), one_line(letter.error),
    ]  # fmt: skip


def _letter_json(letter: InboxDeadLetter) -> dict[str, object]:
    return {
        "consumer": letter.consumer,
        **message_json(letter.message),
        "attempts": letter.attempts,
        "error": letter.error,
        "dead_at": letter.dead_at.isoformat(),
    }
