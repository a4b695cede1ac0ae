"""`eventcore dead-letters ...`: list, replay and discard parked events."""

from __future__ import annotations

import uuid

import click

from eventcore import DeadLetter, ProjectionWorker
from eventcore.cli._app import load_projectors, select
from eventcore.cli._connection import Settings, open_store, pass_settings
from eventcore.cli._output import dead_letter_row, echo_json, echo_table
from eventcore.cli._running import run

__all__ = ["dead_letters"]

_HEADERS = ["PROJECTOR", "POSITION", "EVENT", "TYPE", "ATTEMPTS", "PARKED AT", "ERROR"]
_stream = click.option("--stream", "stream_id", metavar="STREAM_ID", help="Only this stream's.")


@click.group("dead-letters")
def dead_letters() -> None:
    """Events that projectors parked (on_failure="park"): list, replay, discard."""


@dead_letters.command("list")
@click.argument("projector", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per dead letter.")
@pass_settings
def list_dead_letters(settings: Settings, projector: str | None, as_json: bool) -> None:
    """List the parked events (of PROJECTOR, or of all), in log order.

    ATTEMPTS is how often the handler failed on the event; 0 means it never ran,
    because an earlier event of its stream is parked (an ordered projector).
    """

    async def load() -> list[DeadLetter]:
        async with open_store(settings) as store:
            return await store.list_dead_letters(projector)

    letters = run(load)
    if as_json:
        for letter in letters:
            echo_json(_letter_json(letter))
    elif letters:
        echo_table(_HEADERS, [dead_letter_row(letter) for letter in letters])
    else:
        click.echo("no dead letters")


@dead_letters.command()
@click.argument("projector")
@_stream
@pass_settings
def replay(settings: Settings, projector: str, stream_id: str | None) -> None:
    """Run PROJECTOR (from --app) again on its parked events.

    Each event is handled in its own transaction, which also deletes its dead letter.
    Events that fail again stay parked, with their attempts counted (and, for an
    ordered projector, the later events of their stream with them); the command then
    exits with status 1.
    """
    chosen = select(load_projectors(settings.app), [projector])

    async def replay_all() -> tuple[int, int]:
        async with open_store(settings) as store:
            worker = ProjectionWorker(store, chosen)
            replayed = await worker.replay_dead_letters(projector, stream_id=stream_id)
            left = await store.list_dead_letters(projector)
            return replayed, len([d for d in left if stream_id in (None, d.stream_id)])

    replayed, left = run(replay_all)
    click.echo(f"replayed {replayed} events of {projector}; {left} still parked")
    if left:
        raise click.exceptions.Exit(1)


@dead_letters.command()
@click.argument("projector")
@_stream
@click.option("--event", "event_ids", multiple=True, type=click.UUID, help="Only this event's.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_settings
def discard(
    settings: Settings,
    projector: str,
    stream_id: str | None,
    event_ids: tuple[uuid.UUID, ...],
    yes: bool,
) -> None:
    """Delete PROJECTOR's dead letters without replaying them (all, or some).

    The events stay unprojected for good; later events of their streams are handled
    normally again. Needs no --app.
    """

    async def discard_some() -> int:
        async with open_store(settings) as store:
            letters = [
                d
                for d in await store.list_dead_letters(projector)
                if stream_id in (None, d.stream_id) and (not event_ids or d.event_id in event_ids)
            ]
            if not letters:
                return 0
            if not yes:
                click.confirm(f"Discard {len(letters)} dead letters of {projector!r}?", abort=True)
            async with store.session() as session:
                for letter in letters:
                    await session.release(projector, letter.event_id)
                await session.commit([])
            return len(letters)

    click.echo(f"discarded {run(discard_some)} dead letters of {projector}")


def _letter_json(letter: DeadLetter) -> dict[str, object]:
    return {
        "projector": letter.projector,
        "event_id": str(letter.event_id),
        "stream_id": letter.stream_id,
        "version": letter.version,
        "event_type": letter.event_type,
        "transaction_id": letter.transaction_id,
        "global_position": letter.global_position,
        "attempts": letter.attempts,
        "parked_at": letter.parked_at.isoformat(),
        "error": letter.error,
    }
