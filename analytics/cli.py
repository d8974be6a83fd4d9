"""``datafactory analytics``: ``run`` (incremental, behind the watermark; ``--worker`` shares it with other workers
through the work table, analytics/work.py) and ``backfill --from --to``."""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from datetime import datetime

import click
import pandas as pd

from analytics import store, work
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
    if summary.no_ideal_cycle_time:
        click.echo(f"{plant.enterprise}/{plant.site}: no OEE for {len(summary.no_ideal_cycle_time)} machine(s) without"
                   f" ideal_cycle_time_s (cells {summary.no_ideal_cycle_time})", err=True)


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
@click.option("--worker", is_flag=True,
              help="Claim plants from the shared work table, so any number of workers (on any machine) share a run.")
@click.option("--lease", "lease_s", type=click.FloatRange(min=1.0), default=60.0, show_default=True,
              help="With --worker: seconds a claim lasts unless renewed; a crashed worker's plant is claimed again "
                   "after this.")
@click.option("--name", help="With --worker: this worker's name in the work table [default: host:pid].")
@click.pass_obj
def run(obj: tuple[str | None, str | None], *, every: float | None, only: str | None, worker: bool,
        lease_s: float, name: str | None) -> None:
    """Compute everything new since the watermark, plus windows touched by late data."""
    url, enterprise = _target(obj, only)
    if worker:
        _work(url, enterprise, every, lease_s, name or f"{socket.gethostname()}:{os.getpid()}")
        return
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


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _work(url: str, enterprise: str | None, every: float | None, lease_s: float, name: str) -> None:
    """One round (or, with ``--every``, a round every so many seconds) shared with the other workers."""
    log.info("analytics worker %s: lease %.0f s", name, lease_s)
    signal.signal(signal.SIGTERM, _interrupted)  # what Docker and systemd send: give the plant back, exit 130
    while True:
        try:
            done = work.drain(url, worker=name, enterprise=enterprise, lease_s=lease_s, report=_report,
                              every=every)
        except DataFactoryError as err:
            if every is None:
                raise click.ClickException(str(err)) from err
            log.error("analytics worker failed, retrying in %.0f s: %s", every, err)
            time.sleep(every)
            continue
        if done.failed:
            failed = "; ".join(f"plant {p}: {m}" for p, m in sorted(done.failed.items()))
            if every is None:
                raise click.ClickException(f"{len(done.failed)} plant(s) failed: {failed}")
            log.error("%d plant(s) failed, retried next round: %s", len(done.failed), failed)
        if every is None:
            return
        time.sleep(min(done.wait_s, every) if done.wait_s > 0 else 1.0)


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
