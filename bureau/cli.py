"""``datafactory bureau …``: import, registry, stats, publish, analyse.

Every command reads the database URL from ``DATAFACTORY_DATABASE_URL``. Import problems are printed one per line
with row and column, and the command exits with status 1 when a file had problems.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import click

from bureau.statistics.reports_import import ImportReport
from datafactory.codes.calendar import parse_month
from datafactory.db.connect import connect
from datafactory.errors import DataFactoryError
from datafactory.settings import get_settings


def _month(ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    parsed = parse_month(value)
    if parsed is None:
        raise click.BadParameter(f"{value!r} is not a month (YYYY-MM)")
    return parsed


def _print_report(report: ImportReport) -> None:
    for problem in report.problems:
        click.echo(f"{report.file}: {problem}", err=True)
    click.echo(f"{report.file}: {report.rows_loaded} of {report.rows_total} row(s) loaded,"
               f" {report.revisions} revision(s), {len(report.problems)} problem(s)")


@click.group()
def bureau() -> None:
    """City industry bureau: registry, reports import, statistics, disclosure-controlled publication."""


@bureau.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--good-rows-only", is_flag=True, help="Load the valid rows even when others have problems.")
def import_cmd(file: Path, good_rows_only: bool) -> None:
    """Import monthly reports from a CSV or XLSX file (all-or-nothing unless --good-rows-only)."""
    from bureau.statistics.reports_import import import_reports

    with connect(get_settings().database_url) as conn:
        try:
            report = import_reports(conn, file, good_rows_only=good_rows_only)
        except DataFactoryError as err:
            raise click.ClickException(str(err)) from err
    _print_report(report)
    if report.problems:
        sys.exit(1)


@bureau.group()
def registry() -> None:
    """The enterprise registry (attributes with validity intervals)."""


@registry.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--valid-from", callback=_month, required=True, help="Month the attributes take effect (YYYY-MM).")
@click.option("--good-rows-only", is_flag=True, help="Load the valid rows even when others have problems.")
def registry_import(file: Path, valid_from: date, good_rows_only: bool) -> None:
    """Register or update enterprises from a CSV/XLSX file."""
    from bureau.statistics.reports_import import import_registry

    with connect(get_settings().database_url) as conn:
        try:
            report = import_registry(conn, file, valid_from=valid_from, good_rows_only=good_rows_only)
        except DataFactoryError as err:
            raise click.ClickException(str(err)) from err
    _print_report(report)
    if report.problems:
        sys.exit(1)


@registry.command("show")
@click.argument("credit_code")
def registry_show(credit_code: str) -> None:
    """Print an enterprise's attribute history."""
    from bureau.statistics.registry import history

    with connect(get_settings().database_url) as conn:
        rows = history(conn, credit_code)
    if not rows:
        raise click.ClickException(f"{credit_code} is not in the registry")
    for r in rows:
        click.echo("  ".join(f"{k}={v}" for k, v in r.items()))


@bureau.command("stats")
@click.option("--month", callback=_month, required=True, help="Month (YYYY-MM).")
@click.option("--by", multiple=True, help="Dimension to group by (repeatable): division, industry_group, town, park,"
              " size_class, ownership, above_designated.")
@click.option("--filter", "filters", multiple=True, help="dimension=value (repeatable).")
def stats_cmd(month: date, by: tuple[str, ...], filters: tuple[str, ...]) -> None:
    """Unsuppressed statistics for bureau staff with access to raw data (not the `bureau` role)."""
    from bureau.statistics.facts import enterprise_frame
    from bureau.statistics.stats import summarize

    wanted: dict[str, list[str]] = {}
    for f in filters:
        if "=" not in f:
            raise click.BadParameter(f"{f!r}: use dimension=value", param_hint="--filter")
        dim, value = f.split("=", 1)
        wanted.setdefault(dim, []).append(value)
    with connect(get_settings().database_url) as conn:
        frame = enterprise_frame(conn, month)
    try:
        table = summarize(frame, by, wanted)
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    click.echo(table.to_string(index=False))


@bureau.command("publish")
@click.option("--month", callback=_month, required=True, help="Month (YYYY-MM).")
@click.option("--min-frequency", default=3, show_default=True, help="Minimum contributors per published cell.")
@click.option("--dominance-k", default=0.85, show_default=True, help="Dominance (2, k) rule share.")
@click.option("--p-percent", default=0.10, show_default=True, help="p % rule, as a fraction.")
def publish_cmd(month: date, min_frequency: int, dominance_k: float, p_percent: float) -> None:
    """Recompute the month's disclosure-controlled tables the `bureau` role reads."""
    from bureau.statistics.publish import publish_month
    from bureau.statistics.sdc import SdcParameters

    params = SdcParameters(min_frequency=min_frequency, dominance_k=dominance_k, p_percent=p_percent)
    with connect(get_settings().database_url) as conn:
        try:
            r = publish_month(conn, month, params)
        except DataFactoryError as err:
            raise click.ClickException(str(err)) from err
    click.echo(f"{month:%Y-%m}: {r.cells} cells, {r.primary} primary and {r.secondary} secondary suppressions,"
               f" {r.ytd_only} year-to-date only (releases protected jointly), {r.seconds:.1f} s")


@bureau.command("audit")
@click.option("--min-frequency", default=3, show_default=True, help="Minimum contributors per published cell.")
@click.option("--dominance-k", default=0.85, show_default=True, help="Dominance (2, k) rule share.")
@click.option("--p-percent", default=0.10, show_default=True, help="p % rule, as a fraction.")
@click.option("--all", "show_all", is_flag=True, help="Print the interval of every protected quantity.")
def audit_cmd(min_frequency: int, dominance_k: float, p_percent: float, show_all: bool) -> None:
    """Attack every release to date as an intruder who kept them all; exit 1 if anything is exposed."""
    from bureau.statistics.releases import audit_history
    from bureau.statistics.sdc import SdcParameters

    params = SdcParameters(min_frequency=min_frequency, dominance_k=dominance_k, p_percent=p_percent)
    with connect(get_settings().database_url) as conn:
        result = audit_history(conn, params)
    if not result.months:
        raise click.ClickException("nothing published yet; run `bureau publish --month M` first")
    for x in result.quantities if show_all else []:
        click.echo(("ok       " if x.protected else "EXPOSED  ") + x.describe())
    for x in result.exposed if not show_all else []:
        click.echo("EXPOSED  " + x.describe())
    for r in result.ratios:
        click.echo("EXPOSED  " + r.describe())
    by_kind: dict[str, float] = {}
    for x in result.quantities:
        margin = min(x.high - x.value, x.value - x.low) / x.need if x.need > 0 else float("inf")
        by_kind[x.kind] = min(by_kind.get(x.kind, float("inf")), margin)
    narrowest = ", ".join(f"{k} {v:.2f}×" for k, v in sorted(by_kind.items()))
    bad = len(result.exposed) + len(result.ratios)
    click.echo(f"{result.months[0]:%Y-%m}..{result.months[-1]:%Y-%m}: {len(result.months)} release(s),"
               f" {len(result.quantities)} protected quantities, {bad} exposed; narrowest margin per kind"
               f" (interval half-width / requirement): {narrowest or 'none'}")
    if bad:
        sys.exit(1)


@bureau.command("analyse")
@click.option("--month", callback=_month, required=True, help="Month (YYYY-MM); publish it first.")
def analyse_cmd(month: date) -> None:
    """Seasonal adjustment, forecasts, early warnings and nowcasts for the month."""
    from bureau.statistics.macro_run import run_macro

    with connect(get_settings().database_url) as conn:
        r = run_macro(conn, month)
    click.echo(f"{month:%Y-%m}: {r.warnings} warning(s), {r.seasonal} adjusted series, {r.forecasts} forecast"
               f" point(s), {r.nowcasts} nowcast(s)")
