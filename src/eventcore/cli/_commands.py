"""The `eventcore` click group, its connection options and `schema create`."""

from __future__ import annotations

import logging

import click

import eventcore
from eventcore.cli._connection import Settings, engine_for, pass_settings
from eventcore.cli._dead_letters import dead_letters
from eventcore.cli._inbox import inbox
from eventcore.cli._log import log
from eventcore.cli._outbox import outbox
from eventcore.cli._personal_data import personal_data
from eventcore.cli._projections import projections
from eventcore.cli._running import run
from eventcore.cli._schema import SchemaReport, upgrade_schema

__all__ = ["cli"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--url",
    envvar="EVENTCORE_DATABASE_URL",
    show_envvar=True,
    metavar="URL",
    help="The database: sqlite:///FILE or postgresql://USER@HOST/DB (asyncpg is used).",
)
@click.option(
    "--schema",
    envvar="EVENTCORE_SCHEMA",
    show_envvar=True,
    help="The PostgreSQL schema of the event store's tables (default: the search path).",
)
@click.option(
    "--prefix",
    envvar="EVENTCORE_PREFIX",
    show_envvar=True,
    default="eventcore_",
    show_default=True,
    help="The prefix of the event store's table names (EventStoreTables(prefix=...)).",
)
@click.option(
    "--app",
    envvar="EVENTCORE_APP",
    show_envvar=True,
    metavar="MODULE[:ATTR]",
    help="Where the projectors are: a list of Projector instances, or a function "
    "returning one (ATTR defaults to 'projectors').",
)
@click.option(
    "--kek-file",
    envvar="EVENTCORE_KEK_FILE",
    show_envvar=True,
    metavar="PATH",
    help="The key-encryption keys of personal data (id=base64key lines, the current "
    "first); default: $EVENTCORE_KEK, if set.",
)
@click.option(
    "-v", "--verbose", is_flag=True, help="Log what the workers do, not only their problems."
)
@click.version_option(eventcore.__version__, prog_name="eventcore")
@click.pass_context
def cli(
    ctx: click.Context,
    url: str | None,
    schema: str | None,
    prefix: str,
    app: str | None,
    kek_file: str | None,
    verbose: bool,
) -> None:
    """Operate an eventcore event store: schema, log, projections, outbox, personal data.

    Errors print one line and exit with status 1 (2 for wrong usage).
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = Settings(url=url, schema=schema, prefix=prefix, app=app, kek_file=kek_file)


@cli.group()
def schema() -> None:
    """Create or upgrade the event store's tables."""


@schema.command("create")
@pass_settings
def schema_create(settings: Settings) -> None:
    """Create the event store's tables, or add those that are missing.

    Idempotent. It creates the PostgreSQL schema (with --schema), every missing table
    and the missing indexes of existing tables: that is all an "upgrade" does. It
    never drops or alters a table: if an existing one lacks columns this version of
    eventcore needs, it says so and exits with status 1 (migrate such tables, e.g.
    with alembic and EventStoreTables.metadata).
    """

    async def create() -> SchemaReport:
        tables = settings.tables()
        engine = engine_for(settings.database_url())
        try:
            return await upgrade_schema(engine, tables)
        finally:
            await engine.dispose()

    report = run(create)
    for kind, names in [("tables", report.created_tables), ("indexes", report.created_indexes)]:
        if names:
            click.echo(f"created {kind}: {', '.join(names)}")
    if report.outdated:
        raise click.ClickException(
            f"tables older than this eventcore: {'; '.join(report.outdated)} "
            "(this command adds no columns: migrate them, e.g. with alembic)"
        )
    if not report.created_tables and not report.created_indexes:
        click.echo("the schema is up to date")


cli.add_command(log)
cli.add_command(projections)
cli.add_command(dead_letters)
cli.add_command(outbox)
cli.add_command(inbox)
cli.add_command(personal_data)
