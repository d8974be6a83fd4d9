"""``datafactory analytics``: ``run`` (incremental, behind the watermark) and ``backfill --from --to``."""

from __future__ import annotations

import logging
import time
from datetime import datetime

import click
import pandas as pd

from analytics import store
from analytics.run import RunSummary, run_plant
from datafactory.errors import DataFactoryError
from datafactory.settings import Settings

log = logging.getLogger(__name__)


def _when(value: datetime | str) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        raise click.BadParameter(f"{value} has no time zone; write e.g. 2026-03-01T00:00+08:00 or …Z")
    return ts.tz_convert("UTC")


def _plants(url: str, enterprise: str | None) -> list[store.Plant]:
    with store.session(url) as conn:
        return store.plants(conn, enterprise)


def _report(summary: RunSummary, plant: store.Plant, seconds: float) -> None:
    if summary.start is None:
        click.echo(f"{plant.enterprise}/{plant.site}: nothing new")
        return
    rows = ", ".join(f"{k} {v}" for k, v in sorted(summary.rows.items()))
    click.echo(f"{plant.enterprise}/{plant.site}: {summary.start} … {summary.end} in {seconds:.1f} s ({rows})")


@click.group()
@click.option("--database-url", help="Database [default: DATAFACTORY_DATABASE_URL].")
@click.option("--enterprise", help="Only this enterprise's plants.")
@click.pass_context
def analytics(ctx: click.Context, database_url: str | None, enterprise: str | None) -> None:
    """Compute OEE, energy and maintenance results into the tables the dashboards read."""
    # Resolved by the subcommand: its own --database-url / --enterprise are parsed after this callback runs.
    ctx.obj = (database_url, enterprise)


def _target(obj: tuple[str | None, str | None], enterprise: str | None) -> tuple[str, str | None]:
    """The database and enterprise: the subcommand's options, else the group's, else the settings."""
    return obj[0] or Settings().database_url, enterprise or obj[1]


_ENTERPRISE = click.option("--enterprise", "only", default=None, help="Only this enterprise's plants.")


@analytics.command()
@click.option("--every", type=float, help="Keep running: start a new incremental run this many seconds apart.")
@_ENTERPRISE
@click.pass_obj
def run(obj: tuple[str | None, str | None], every: float | None, only: str | None) -> None:
    """Compute everything new since the watermark, plus windows touched by late data."""
    url, enterprise = _target(obj, only)
    while True:
        started = time.monotonic()
        try:
            for plant in _plants(url, enterprise):
                t0 = time.perf_counter()
                _report(run_plant(url, plant, None, None), plant, time.perf_counter() - t0)
        except DataFactoryError as err:
            if every is None:
                raise click.ClickException(str(err)) from err
            log.error("analytics run failed, retrying in %.0f s: %s", every, err)
        except Exception:
            if every is None:
                raise
            # The service's top level: one bad run must not stop the next; the traceback says what happened.
            log.exception("analytics run failed unexpectedly, retrying in %.0f s", every)
        if every is None:
            return
        time.sleep(max(0.0, every - (time.monotonic() - started)))


@analytics.command()
@click.option("--from", "start", required=True, help="Start, ISO 8601 with time zone.")
@click.option("--to", "end", required=True, help="End (exclusive), ISO 8601 with time zone.")
@_ENTERPRISE
@click.pass_obj
def backfill(obj: tuple[str | None, str | None], start: str, end: str, only: str | None) -> None:
    """Recompute [--from, --to) from raw samples, replacing earlier results."""
    url, enterprise = _target(obj, only)
    t_from, t_to = _when(start), _when(end)
    if t_to <= t_from:
        raise click.BadParameter("--to must be after --from")
    try:
        for plant in _plants(url, enterprise):
            t0 = time.perf_counter()
            _report(run_plant(url, plant, t_from, t_to), plant, time.perf_counter() - t0)
    except DataFactoryError as err:
        raise click.ClickException(str(err)) from err
