"""`evalmon db migrate|status`: apply and inspect the versioned schema migrations.

Exit codes follow architecture.md section 7: 0 ok, 1 the database failed (unreachable, a migration
failed: nothing was applied), 2 usage or configuration (DATABASE_URL missing, bad schema name).
Messages never contain the URL. psycopg is imported inside the commands, so registering this
app costs the rest of the CLI nothing.
"""

from __future__ import annotations

import typer

from shared.errors import ConfigError
from shared.settings import Settings, load_settings

db_app = typer.Typer(help="The results database (Postgres/Neon): schema migrations.", no_args_is_help=True)


def _settings() -> Settings:
    from shared.database.connection import database_url, schema_name

    settings = load_settings()
    try:
        database_url(settings)
        schema_name(settings)
    except ConfigError as exc:
        typer.echo(f"error: {exc.one_line()}", err=True)
        raise typer.Exit(2) from None
    return settings


@db_app.command("migrate", epilog="Example: evalmon db migrate")
def migrate_command() -> None:
    """Apply pending migrations in one transaction (a second run changes nothing)."""
    from shared.database import migrate as migrations
    from shared.database.connection import describe_error, schema_name

    settings = _settings()
    schema = schema_name(settings)
    try:
        applied = migrations.migrate(settings)
    except Exception as exc:
        typer.echo(f"error: migration failed, nothing was applied: {describe_error(exc, settings)}", err=True)
        raise typer.Exit(1) from None
    if not applied:
        typer.echo(f"schema '{schema}' is up to date: no pending migrations")
        return
    for migration in applied:
        typer.echo(f"applied {migration.label}")
    typer.echo(f"schema '{schema}': {len(applied)} migration(s) applied")


@db_app.command("status", epilog="Example: evalmon db status")
def status_command() -> None:
    """List migrations with when each was applied, and the pending ones."""
    from shared.database import migrate as migrations
    from shared.database.connection import describe_error, schema_name

    settings = _settings()
    schema = schema_name(settings)
    try:
        rows = migrations.status(settings)
    except Exception as exc:
        typer.echo(f"error: cannot read migration status: {describe_error(exc, settings)}", err=True)
        raise typer.Exit(1) from None
    pending = 0
    for row in rows:
        if row.applied_at is not None:
            note = "  (file changed since it was applied)" if row.changed_since_applied else ""
            typer.echo(f"applied  {row.migration.label}  {row.applied_at.isoformat()}{note}")
        else:
            pending += 1
            typer.echo(f"pending  {row.migration.label}")
    typer.echo(
        f"schema '{schema}': {len(rows) - pending} applied, {pending} pending"
        + ("; run `evalmon db migrate`" if pending else "")
    )
