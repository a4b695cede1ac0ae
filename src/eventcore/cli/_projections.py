"""`eventcore projections ...`: status, reset, catch-up and running the workers."""

from __future__ import annotations

import sys
from collections.abc import Callable

import anyio
import click

from eventcore import EventStore, LogPosition, ProjectionStatus, ProjectionWorker, Projector
from eventcore.cli._app import load_projectors, select
from eventcore.cli._connection import Settings, open_store, pass_settings
from eventcore.cli._horizon import wait_until_readable_noting
from eventcore.cli._output import echo_json, echo_table, position_text, status_row
from eventcore.cli._rebuild import activate, rebuild
from eventcore.cli._running import run, until_signalled

__all__ = ["projections"]

_HEADERS = ["NAME", "CHECKPOINT", "HEAD", "PENDING", "LAG"]
_Active = dict[str, int]
"""The active version of each projection whose version was switched."""
_batch_size = click.option(
    "--batch-size", type=click.IntRange(min=1), default=200, show_default=True,
    help="Events per transaction (handlers and checkpoint commit together).",
)  # fmt: skip
_names = click.argument("names", nargs=-1, metavar="[NAME]...")


@click.group()
def projections() -> None:
    """Projections: status and lag, reset, catch-up, workers (most need --app)."""


@projections.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of a table.")
@pass_settings
def list_projections(settings: Settings, as_json: bool) -> None:
    """List projections: checkpoint, log head, pending events and lag.

    With --app, every projector of the application is listed, with whether events it
    handles wait (PENDING) and the age of the oldest of them (LAG). Checkpoints of
    other subscribers (or without --app, all of them) are listed too, with '-' where
    only their projector could tell. A version after the first is listed as
    NAME@vN; once versions are in play, a second table shows which one is ACTIVE.
    """
    projectors = load_projectors(settings.app) if settings.app else []

    async def collect() -> tuple[list[ProjectionStatus], dict[str, LogPosition], int, _Active]:
        async with open_store(settings) as store:
            statuses = await ProjectionWorker(store, projectors).status() if projectors else []
            active = await store.active_projection_versions()
            return statuses, await store.load_checkpoints(), await store.log_head(), active

    statuses, checkpoints, head, active = run(collect)
    others = {n: p for n, p in sorted(checkpoints.items()) if n not in {s.name for s in statuses}}
    if as_json:
        own = [_status_json(s, p, active) for s, p in zip(statuses, projectors, strict=True)]
        echo_json([*own, *(_other_json(*o, head) for o in others.items())])
    elif not statuses and not others:
        click.echo("no projections yet (with --app, the application's are listed)")
    else:
        rows = [status_row(s) for s in statuses]
        rows += [[name, position_text(p), str(head), "-", "-"] for name, p in others.items()]
        echo_table(_HEADERS, rows)
        _echo_active(projectors, active)


@projections.command()
@click.argument("name")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_settings
def reset(settings: Settings, name: str, yes: bool) -> None:
    """Delete projection NAME's checkpoint: it will process the whole log again.

    Its read model is not cleared: empty its tables first, unless its handlers can
    apply events again. Stop the workers running it first (they would write their
    checkpoint back).
    """

    async def reset_checkpoint() -> None:
        async with open_store(settings) as store:
            found = (await store.load_checkpoints([name])).get(name)
            if found is None:
                raise click.ClickException(f"no checkpoint named {name!r}: nothing to reset")
            if not yes:
                click.confirm(
                    f"Reset {name!r} (at {position_text(found)}) to the start of the log?",
                    abort=True,
                )
            await store.delete_checkpoint(name)

    run(reset_checkpoint)
    click.echo(f"reset {name}: it starts again from the beginning of the log")


@projections.command("catch-up")
@_names
@_batch_size
@pass_settings
def catch_up(settings: Settings, names: tuple[str, ...], batch_size: int) -> None:
    """Bring projections up to date with the log, then exit (all, or those named).

    Up to date means: every event committed before the command started is applied.
    The progress bar counts log positions, from the checkpoints to the head.
    """
    chosen = select(load_projectors(settings.app), names)

    async def catch_up_all() -> int:
        async with open_store(settings) as store:
            worker = ProjectionWorker(store, chosen, batch_size=batch_size)
            await wait_until_readable_noting(store)  # up to date means: with the head as of now
            return await _with_progress(store, worker)

    applied = run(catch_up_all)
    click.echo(f"caught up: {applied} events applied ({', '.join(p.key for p in chosen)})")


@projections.command("run")
@_names
@_batch_size
@pass_settings
def run_workers(settings: Settings, names: tuple[str, ...], batch_size: int) -> None:
    """Run the projections (all, or those named) until Ctrl-C or SIGTERM.

    Each catches up, then follows the log live. On SIGINT or SIGTERM the workers
    stop cleanly: a batch in flight is rolled back, and applied again on restart.
    A projector that gives up (see its on_failure) ends the command with status 1.
    """
    chosen = select(load_projectors(settings.app), names)

    async def follow() -> None:
        async with open_store(settings) as store:
            worker = ProjectionWorker(store, chosen, batch_size=batch_size)
            click.echo(f"running {', '.join(p.key for p in chosen)}; stop with Ctrl-C", err=True)
            await until_signalled(worker.run)

    run(follow)
    click.echo("stopped", err=True)


async def _with_progress(store: EventStore, worker: ProjectionWorker) -> int:
    names = [p.key for p in worker.projectors]
    head = await store.log_head()
    start = await store.load_checkpoints(names)
    begin = {n: min(start.get(n, LogPosition()).global_position, head) for n in names}
    length = sum(head - b for b in begin.values())
    bar = click.progressbar(length=length, label="catching up", show_pos=True, file=sys.stderr)
    with bar:
        done = [0]

        def advance(to: int) -> None:
            bar.update(max(to - done[0], 0))
            done[0] = max(done[0], to)

        finished = anyio.Event()
        async with anyio.create_task_group() as group:
            group.start_soon(_track, store, begin, head, advance, finished)
            try:
                applied = await worker.catch_up()
            finally:
                finished.set()  # not cancelled: a database call cut short can hang aiosqlite
        advance(length)
    return applied


async def _track(
    store: EventStore,
    begin: dict[str, int],
    head: int,
    advance: Callable[[int], None],
    finished: anyio.Event,
) -> None:
    """Report how far the checkpoints have come, a few times a second, until finished."""
    while not finished.is_set():
        found = await store.load_checkpoints(list(begin))
        now = {n: found.get(n, LogPosition()).global_position for n in begin}
        advance(sum(min(max(now[n], b), head) - b for n, b in begin.items()))
        with anyio.move_on_after(0.2):
            await finished.wait()


def _status_json(status: ProjectionStatus, of: Projector, active: _Active) -> dict[str, object]:
    return {
        "name": status.name,
        "checkpoint": status.checkpoint._asdict(),
        "head": status.head,
        "pending": status.pending,
        "lag_seconds": status.lag_seconds,
        "version": of.version,
        "active": active.get(of.name, 1) == of.version,
    }


def _echo_active(projectors: list[Projector], active: _Active) -> None:
    """Which version of each projection serves, once versions are in play."""
    if not active and all(p.version == 1 for p in projectors):
        return
    names = sorted(active.keys() | {p.name for p in projectors})
    click.echo()
    echo_table(["NAME", "ACTIVE"], [[name, f"v{active.get(name, 1)}"] for name in names])


def _other_json(name: str, position: LogPosition, head: int) -> dict[str, object]:
    return {"name": name, "checkpoint": position._asdict(), "head": head}


projections.add_command(rebuild)
projections.add_command(activate)
