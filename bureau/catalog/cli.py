"""``datafactory catalog list|show NAME|export --out FILE|freshness|acknowledge ID``.

Reads the database URL from ``DATAFACTORY_DATABASE_URL``. ``export`` writes DCAT-style JSON and refuses to write
a document that does not validate against ``bureau/catalog/catalog.schema.json``.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from datafactory.db.connect import connect
from datafactory.settings import get_settings


@click.group()
def catalog() -> None:
    """Resource catalogue: every dataset with provider, frequency, sharing, grade and schema."""


@catalog.command("list")
def list_cmd() -> None:
    """One line per dataset: name, grade, sharing, update frequency, title."""
    from bureau.catalog.entries import build
    from bureau.catalog.specs import GRADE_LABELS

    with connect(get_settings().database_url) as conn:
        entries = build(conn)
    for e in entries:
        s = e.spec
        click.echo(f"{s.name:<40} {GRADE_LABELS[s.grade]} {s.sharing:<11} {s.frequency or 'irregular':<9} {s.title}")


@catalog.command("show")
@click.argument("name")
def show_cmd(name: str) -> None:
    """A dataset's entry as JSON, with its columns."""
    from bureau.catalog.entries import CatalogError, build, entry_to_dcat, find

    with connect(get_settings().database_url) as conn:
        entries = build(conn)
    try:
        entry = find(entries, name)
    except CatalogError as err:
        raise click.ClickException(str(err)) from err
    click.echo(json.dumps(entry_to_dcat(entry), ensure_ascii=False, indent=2))


@catalog.command("export")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="JSON file to write.")
def export_cmd(out: Path) -> None:
    """Write the whole catalogue as DCAT-style JSON (validated against the committed JSON Schema)."""
    from bureau.catalog.entries import CatalogError, build, to_dcat, validate

    with connect(get_settings().database_url) as conn:
        document = to_dcat(build(conn))
    try:
        validate(document)
    except CatalogError as err:
        raise click.ClickException(str(err)) from err
    out.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    click.echo(f"{out}: {len(document['dcat:dataset'])} datasets")


@catalog.command("check")
def check_cmd() -> None:
    """Check that who can read each dataset fits its grade; exit 1 listing every misfit."""
    from bureau.catalog.grading import violations

    with connect(get_settings().database_url) as conn:
        problems = violations(conn)
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise SystemExit(1)
    click.echo("every dataset's readers fit its grade")


@catalog.command("freshness")
@click.option("--now", "now", type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z"]), default=None,
              help="Check as of this time [default: now], e.g. 2026-11-23T12:00:00+0000.")
def freshness_cmd(now: datetime | None) -> None:
    """Compare each dataset's newest data with its deadline; update dataset_freshness and the alerts."""
    from bureau.catalog.freshness import check

    with connect(get_settings().database_url) as conn:
        results = check(conn, now)
    for f in results:
        newest = f.newest.isoformat() if f.newest else "-"
        click.echo(f"{f.dataset:<40} {f.status:<6} newest={newest} due={f.due.isoformat() if f.due else '-'}")
    late = sum(f.status == "late" for f in results)
    click.echo(f"{len(results)} monitored dataset(s), {late} late")


@catalog.command("acknowledge")
@click.argument("alert_id", type=int)
@click.option("--by", required=True, help="Who acknowledges it.")
def acknowledge_cmd(alert_id: int, by: str) -> None:
    """Acknowledge an open late-data alert."""
    from bureau.catalog.freshness import acknowledge

    with connect(get_settings().database_url) as conn:
        if not acknowledge(conn, alert_id, by):
            raise click.ClickException(f"no open alert with id {alert_id}")
    click.echo(f"alert {alert_id} acknowledged")
