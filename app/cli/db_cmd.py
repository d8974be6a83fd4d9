"""``datafactory db migrate|partitions``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click

from datafactory.db import partitions
from datafactory.db.connect import connect
from datafactory.db.migrate import migrate as run_migrate
from datafactory.errors import SchemaNotMigrated
from datafactory.settings import get_settings, redact_url


@click.group()
def db() -> None:
    """Database schema and storage."""


@db.command()
def migrate() -> None:
    """Create or upgrade the schema (idempotent). Uses TimescaleDB when the extension is available."""
    settings = get_settings()
    result = run_migrate(settings.database_url, settings)
    backend = "TimescaleDB" if result.timescale else "plain PostgreSQL (partitioned samples)"
    click.echo(f"{redact_url(settings.database_url)}: {backend}; applied {len(result.applied)} migration(s)")
    for name in result.applied:
        click.echo(f"  {name}")


@db.command("partitions")
@click.option("--ahead-days", default=7, show_default=True, help="Create daily partitions this far ahead.")
@click.option("--back-days", default=1, show_default=True, help="…and this far back.")
@click.option("--retention-days", type=int, default=None, help="Drop partitions older than this many days.")
def partitions_cmd(ahead_days: int, back_days: int, retention_days: int | None) -> None:
    """Maintain plain-PostgreSQL sample partitions (TimescaleDB manages its own chunks)."""
    settings = get_settings()
    with connect(settings.database_url) as conn:
        if conn.execute("SELECT to_regclass('samples') IS NULL").fetchone() == (True,):
            raise SchemaNotMigrated("this database has no samples table")
        if not partitions.is_partitioned(conn):
            click.echo("samples is not a partitioned table (TimescaleDB hypertable?): nothing to do")
            return
        today = datetime.now(UTC).date()
        created = partitions.ensure_partitions(
            conn, today - timedelta(days=back_days), today + timedelta(days=ahead_days)
        )
        dropped = []
        if retention_days is not None:
            dropped = partitions.drop_partitions_before(conn, today - timedelta(days=retention_days))
        conn.commit()
    click.echo(f"created {len(created)} partition(s), dropped {len(dropped)}")


@db.command("roles")
@click.option("--login", is_flag=True, help="Give LOGIN to roles whose password variable is set (docs/security.md).")
@click.option(
    "--config", "configs", multiple=True, type=click.Path(exists=True, dir_okay=False),
    help="Register these plant configs' plants first, so their roles exist before any data arrives (repeatable).",
)
def roles_cmd(login: bool, configs: tuple[str, ...]) -> None:
    """Provision database roles and row-level security (idempotent; picks up tables added later)."""
    from ops.cli import run_db_roles

    run_db_roles(login=login, configs=configs)
