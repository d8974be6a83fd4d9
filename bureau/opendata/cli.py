"""``datafactory opendata export --period 2026-10 --out DIR``: de-identified open data (CSV, JSON, metadata).

Reads the database URL from ``DATAFACTORY_DATABASE_URL`` and the pseudonym key from
``DATAFACTORY_PSEUDONYM_KEY`` (key id: ``DATAFACTORY_PSEUDONYM_KEY_ID`` or a fingerprint of the key).
"""

from __future__ import annotations

import getpass
from pathlib import Path

import click

from datafactory.db.connect import connect
from datafactory.errors import ConfigError
from datafactory.settings import get_settings


@click.group()
def opendata() -> None:
    """De-identified open data from the disclosure-controlled statistics."""


@opendata.command("export")
@click.option("--period", required=True, help="Month (2026-10), quarter (2026-Q3) or year (2026).")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True, help="Output directory.")
@click.option("--k", "k", default=3, show_default=True, type=click.IntRange(min=3),
              help="k-anonymity on town, division, size class and the output and employment bands (at least 3).")
def export_cmd(period: str, out: Path, k: int) -> None:
    """Write the period's statistical tables and pseudonymised enterprise directory; audit the export."""
    from bureau.bulletin.data import BulletinError
    from bureau.bulletin.period import PeriodError, parse_period
    from bureau.opendata.deid import key_from_env
    from bureau.opendata.export import export

    try:
        parsed = parse_period(period)
        key = key_from_env()
    except (PeriodError, ConfigError) as err:
        raise click.ClickException(str(err)) from err
    try:
        with connect(get_settings().database_url) as conn:
            result = export(conn, parsed, out, key, k=k, actor=f"cli:{getpass.getuser()}")
    except BulletinError as err:
        raise click.ClickException(str(err)) from err
    rows = ", ".join(f"{name} {info['rows']}" for name, info in result.files.items())
    click.echo(f"{out}: {rows} row(s); key id {result.key_id}; {result.withheld} enterprise row(s) withheld"
               f" for {k}-anonymity")
