"""``datafactory bulletin --period 2026-10|2026-Q3|2026 [--lang zh|en] [--out DIR] [--no-pdf]``.

Reads the database URL from ``DATAFACTORY_DATABASE_URL``; the connection needs membership of (or to be able to
SET ROLE to) the ``bureau`` role, which is the only role the numbers are read as.
"""

from __future__ import annotations

from pathlib import Path

import click

from datafactory.db.connect import connect
from datafactory.settings import get_settings


@click.command()
@click.option("--period", required=True, help="Month (2026-10), quarter (2026-Q3) or year (2026).")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True,
              help="Simplified Chinese or English.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=Path("."),
              show_default=True, help="Directory for the HTML and PDF files.")
@click.option("--no-pdf", is_flag=True, help="Write only the HTML page (no Chromium needed).")
def bulletin(period: str, lang: str, out_dir: Path, no_pdf: bool) -> None:
    """Write the bureau's bulletin for a month or quarter as self-contained HTML and PDF."""
    from bureau.bulletin.data import BulletinError
    from bureau.bulletin.period import PeriodError, parse_period
    from bureau.bulletin.write import write_bulletin

    try:
        parsed = parse_period(period)
        with connect(get_settings().database_url) as conn:
            files = write_bulletin(conn, parsed, out_dir, lang=lang, pdf=not no_pdf)
    except (PeriodError, BulletinError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(str(files.html))
    if files.pdf is not None:
        click.echo(str(files.pdf))
