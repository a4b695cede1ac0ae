"""`eventcore projections rebuild` and `activate`: blue/green versions of read models."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from typing import TYPE_CHECKING

import click

from eventcore import ProjectionWorker, Projector, active_version
from eventcore.cli._app import load_projectors, select
from eventcore.cli._connection import Settings, open_store, pass_settings
from eventcore.cli._horizon import wait_until_readable_noting
from eventcore.cli._running import run, until_signalled

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

__all__ = ["activate", "rebuild"]


@click.command()
@click.argument("name")
@click.option(
    "--activate/--no-activate", default=True, show_default=True,
    help="Switch readers to the new version once it has caught up.",
)  # fmt: skip
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=200, show_default=True,
    help="Events per transaction (handlers and checkpoint commit together).",
)  # fmt: skip
@pass_settings
def rebuild(settings: Settings, name: str, activate: bool, batch_size: int) -> None:
    """Build the newest version of projection NAME (from --app), then switch to it.

    The new version (a projector with NAME and a higher version=, writing tables of
    its own) is run from its checkpoint up to the log's head as of now, while the
    active version keeps serving; then it becomes the active one, in one switch.
    Interrupted (Ctrl-C, a failure), it resumes where it stopped when run again.
    Keep the new version in the workers' projectors, so that it stays up to date.
    """
    projector = _newest(load_projectors(settings.app), name)

    async def rebuild_it() -> tuple[int, int]:
        async with open_store(settings) as store:
            serving = await active_version(store, projector)
            await wait_until_readable_noting(store)
            applied: list[int] = []

            async def work() -> None:
                worker = ProjectionWorker(store, [projector], batch_size=batch_size)
                with _Bar(f"rebuilding {projector.key}") as bar:
                    applied.append(
                        await worker.rebuild(projector, progress=bar.show, activate=activate)
                    )

            if await until_signalled(work):
                raise click.ClickException(
                    f"interrupted: run the command again to resume {projector.key}'s rebuild"
                )
            return applied[0], serving

    applied, serving = run(rebuild_it)
    done = f"rebuilt {projector.key}: {applied} events applied"
    if activate:
        click.echo(f"{done}; version {projector.version} of {projector.name} is active "
                   f"(was {serving})")  # fmt: skip
    else:
        click.echo(f"{done}; not activated: version {serving} of {projector.name} serves")


@click.command("activate")
@click.argument("name")
@click.argument("version", type=click.IntRange(min=1))
@pass_settings
def activate(settings: Settings, name: str, version: int) -> None:
    """Make VERSION of projection NAME the one that serves readers (to switch back, say).

    The version must have been built: it needs a checkpoint. Needs no --app.
    """

    async def switch() -> int:
        async with open_store(settings) as store:
            key = name if version == 1 else f"{name}@v{version}"  # as Projector.key
            if key not in await store.load_checkpoints([key]):
                raise click.ClickException(
                    f"version {version} of {name} has no checkpoint ({key}): build it first"
                )
            was = await active_version(store, name)
            await store.activate_projection(name, version)
            return was

    was = run(switch)
    click.echo(f"version {version} of {name} is active (was {was})")


def _newest(projectors: list[Projector], name: str) -> Projector:
    """The highest version of the projectors NAME selects (a name, or a key)."""
    return max(select(projectors, [name]), key=lambda p: p.version)


class _Bar:
    """A progress bar on standard error, opened at the first report (when the total is known)."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._stack = ExitStack()
        self._bar: ProgressBar[int] | None = None

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def show(self, done: int, total: int) -> None:
        """Move the bar to `done` of `total`."""
        if self._bar is None:
            bar = click.progressbar(length=total, label=self._label, show_pos=True, file=sys.stderr)
            self._bar = self._stack.enter_context(bar)
        self._bar.update(done - self._bar.pos)
