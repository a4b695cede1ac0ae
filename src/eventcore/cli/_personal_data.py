"""`eventcore personal-data ...`: forget a data subject, show its keys, rotate the KEK."""

from __future__ import annotations

from collections.abc import Callable

import click

from eventcore import DataKey, KeyProviderError, LocalKeyProvider, SubjectForgotten
from eventcore.cli._connection import KEK_ENV, Settings, open_store, pass_settings
from eventcore.cli._outbox import as_json_option, when
from eventcore.cli._output import echo_json, echo_table
from eventcore.cli._running import run

__all__ = ["personal_data"]

_HEADERS = ["GROUP", "KEY ID", "KEK", "CREATED AT", "FORGOTTEN AT", "BY", "REASON"]


class _NoKeys:
    """A key provider for commands that never wrap or unwrap (forget, status)."""

    current_key_id = "-"

    async def wrap(self, data_key: bytes, associated_data: bytes) -> tuple[str, bytes]:
        raise KeyProviderError("this command has no key-encryption key")

    async def unwrap(self, key_id: str, wrapped: bytes, associated_data: bytes) -> bytes:
        raise KeyProviderError("this command has no key-encryption key")


@click.group("personal-data")
def personal_data() -> None:
    """Personal data: forget a data subject, show its keys, rotate the KEK."""


@personal_data.command("new-key")
@click.argument("key_id")
def new_key(key_id: str) -> None:
    """Print a new random key-encryption key KEY_ID as an id=base64key entry.

    Put it first in $EVENTCORE_KEK (or the --kek-file) to make it current, keep the
    older entries after it, then run `personal-data rotate`.
    """
    click.echo(run_sync(lambda: LocalKeyProvider.generate(key_id)))


@personal_data.command()
@click.argument("subject_id")
@as_json_option
@pass_settings
def status(settings: Settings, subject_id: str, as_json: bool) -> None:
    """Show whether SUBJECT_ID's data keys exist, or who forgot it, when and why.

    Needs no key-encryption key. Exits with status 1 if the subject has no rows at all.
    """

    async def load() -> list[DataKey]:
        async with open_store(settings, keys=_NoKeys()) as store:
            return await store.personal_data.status(subject_id)

    rows = run(load)
    if not rows:
        raise click.ClickException(f"no data keys of {subject_id!r} (none stored, none forgotten)")
    if as_json:
        for row in rows:
            echo_json(_row_json(row))
        return
    usable = sum(row.usable for row in rows)
    state = f"{usable} usable data key(s)" if usable else "no usable data key: forgotten"
    click.echo(f"{subject_id}: {state}")
    echo_table(_HEADERS, [_row(row) for row in rows])


@personal_data.command()
@click.argument("subject_id")
@click.option("--actor", required=True, help="Who asks for it (recorded; no personal data).")
@click.option("--reason", required=True, help="Why, e.g. a ticket (recorded; no personal data).")
@click.option("--group", help="Forget only this key group of the subject.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_settings
def forget(
    settings: Settings, subject_id: str, actor: str, reason: str, group: str | None, yes: bool
) -> None:
    """Destroy SUBJECT_ID's data keys, for good: its personal data reads as replacements.

    Appends a SubjectForgotten event for projectors to purge their copies. Messages
    already published, backups, logs and read models elsewhere are not reached (see
    the personal data guide). Needs no key-encryption key.
    """
    what = f"{subject_id!r}" + (f" (group {group!r})" if group is not None else "")
    if not yes:
        click.confirm(f"forget {what} for good?", abort=True)

    async def forget_now() -> SubjectForgotten | None:
        async with open_store(settings, keys=_NoKeys()) as store:
            return await store.personal_data.forget(
                subject_id, actor=actor, reason=reason, group=group
            )

    told = run(forget_now)
    if told is None:
        click.echo(f"{what} was forgotten before: nothing changed")
    else:
        click.echo(f"forgot {what}: {told.keys_destroyed} data key(s) destroyed")


@personal_data.command()
@pass_settings
def rotate(settings: Settings) -> None:
    """Re-wrap every data key with the current key-encryption key (events are untouched).

    Give the keys with the new one first and the old ones after it ($EVENTCORE_KEK or
    --kek-file); once this is done, the old ones can go.
    """
    try:
        provider = settings.key_provider()
    except KeyProviderError as error:
        raise click.ClickException(str(error)) from None
    if provider is None:
        raise click.UsageError(
            f"rotate needs the key-encryption keys: set ${KEK_ENV} or --kek-file"
        )

    async def rotate_now() -> int:
        async with open_store(settings, keys=provider) as store:
            return await store.personal_data.rotate()

    count = run(rotate_now)
    click.echo(f"re-wrapped {count} data key(s) with {provider.current_key_id!r}")


def run_sync(work: Callable[[], str]) -> str:
    """Run a plain function, its eventcore errors as one line (like `run`)."""
    try:
        return work()
    except KeyProviderError as error:
        raise click.ClickException(str(error)) from None


def _row(row: DataKey) -> list[str]:
    return [
        "(subject)" if row.group == "*" else row.group or "(main)",
        "" if row.key_id is None else str(row.key_id),
        row.kek_id or "",
        when(row.created_at),
        when(row.forgotten_at),
        row.forgotten_by or "",
        row.reason or "",
    ]


def _row_json(row: DataKey) -> dict[str, object]:
    return {
        "subject_id": row.subject_id,
        "group": row.group,
        "key_id": None if row.key_id is None else str(row.key_id),
        "kek_id": row.kek_id,
        "usable": row.usable,
        "created_at": row.created_at.isoformat(),
        "forgotten_at": None if row.forgotten_at is None else row.forgotten_at.isoformat(),
        "forgotten_by": row.forgotten_by,
        "reason": row.reason,
    }
