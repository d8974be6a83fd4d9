"""The demo's closing summary: only what this run did, with its simulated clock and what to query next.

Figures come from this run alone: samples counted since the run's baseline, and OEE only from rows analytics
*computed during this run* (``computed_at`` after it started), so an interrupted run or ``--no-analytics``
shows no OEE of an earlier run. A shift that runs past the newest data is marked incomplete: its OEE covers
only the part the plant ran.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import click

from app.cli.demo_sources import source_lines
from app.harness.observer import DatabaseSnapshot
from app.harness.pipeline import Pipeline
from app.harness.postgres import LocalPostgres
from app.harness.selection import Services
from datafactory.settings import redact_url


@dataclass(frozen=True)
class OeeRow:
    cell: str
    shift: str  # 'day', 'night' … or 'hour'
    start: datetime
    end: datetime
    availability: float | None
    performance: float | None
    quality: float | None
    oee: float | None


@dataclass
class RunResult:
    wall_s: float
    snapshot: DatabaseSnapshot
    published: int
    unique: int | None
    run_s: float
    analytics: str
    oee: list[OeeRow]
    interrupted: bool
    crashed: dict[str, str]
    earlier_samples: int
    sim_start: datetime | None = None
    sim_end: datetime | None = None  # the simulator's clock when it stopped
    wall_end: datetime | None = None  # the wall clock when the plant stopped
    overlap_until: datetime | None = None  # an earlier run's data this run re-simulated (its newest sample)


def database_now(database_url: str) -> datetime | None:
    """The database's clock (``computed_at`` is written by it), or None when it cannot be read."""
    import psycopg

    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
            row = conn.execute("SELECT now()").fetchone()
    except psycopg.Error:
        return None
    return row[0] if row else None


def latest_oee(database_url: str, enterprise: str, computed_since: datetime) -> list[OeeRow]:
    """Latest shift (else hour) OEE per machine among the rows analytics computed after ``computed_since``."""
    import psycopg

    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
            rows = conn.execute(
                """SELECT DISTINCT ON (o.cell_id) c.area || '/' || c.line || '/' || c.cell,
                          CASE WHEN o.period = 'shift' THEN o.shift_name ELSE o.period END, o.time, o.time_end,
                          o.availability, o.performance, o.quality, o.oee
                   FROM oee o JOIN cells c ON c.id = o.cell_id JOIN plants p ON p.id = o.plant_id
                   WHERE (p.enterprise = %s OR %s = '') AND o.period IN ('shift', 'hour') AND o.computed_at >= %s
                   ORDER BY o.cell_id, o.period = 'shift' DESC, o.time DESC""",
                (enterprise, enterprise, computed_since),
            ).fetchall()
    except psycopg.Error:
        return []  # no oee table or no analytics: the summary says so
    return [OeeRow(str(r[0]), str(r[1] or "shift"), r[2], r[3], r[4], r[5], r[6], r[7]) for r in rows]


def _pct(value: float | None) -> str:
    return "   —  " if value is None else f"{100 * value:5.1f}%"


def _clock(r: RunResult, speed: float) -> str:
    """The simulator's clock over the run, beside the wall clock. Not the stored samples' span: on a rerun that
    overlaps earlier data, the newest stored sample can be the earlier run's."""
    if r.sim_start is None or r.sim_end is None:
        return "the simulator did not run"
    line = f"{r.sim_start:%Y-%m-%d %H:%M:%S} → {r.sim_end:%Y-%m-%d %H:%M:%S} UTC at {speed:g}x"
    if r.wall_end is not None:
        ahead = (r.sim_end - r.wall_end).total_seconds()
        line += f" (wall clock at the end {r.wall_end:%H:%M:%S} UTC"
        behind = f"{-ahead:.0f} s" if ahead > -120 else f"{-ahead / 60:.0f} min"
        line += f"; {ahead:.0f} s ahead of it)" if ahead > 0 else f", {behind} behind it)"
    newest = r.snapshot.newest_sample
    if newest is not None and r.overlap_until is None:  # with an overlap the newest may be the earlier run's
        line += f"; newest sample {newest:%H:%M:%S}"
    return line


def _oee_lines(r: RunResult) -> list[str]:
    if r.interrupted:
        return ["  OEE                 not computed: the run was interrupted (analytics did not run)"]
    if r.analytics != "done":
        return [f"  OEE                 not computed by this run (analytics {r.analytics})"]
    if not r.oee:
        return ["  OEE                 no OEE rows computed by this run (see the analytics log)"]
    newest = r.sim_end or r.snapshot.newest_sample
    out = ["  OEE (latest shift per machine, computed by this run)   availability  performance  quality   OEE"]
    partial = False
    for row in r.oee:
        incomplete = newest is not None and row.end > newest
        partial |= incomplete
        mark = "*" if incomplete else " "
        label = f"{row.cell} {row.shift}{mark}"
        out.append(
            f"    {label:<40} {_pct(row.availability):>12} {_pct(row.performance):>12} {_pct(row.quality):>8}"
            f" {_pct(row.oee):>6}"
        )
    if partial:
        first = next(row for row in r.oee if newest is not None and row.end > newest)
        out.append(
            f"    * incomplete shift: {first.start:%H:%M}–{first.end:%H:%M} UTC, data only to {newest:%H:%M} UTC — "
            "the figures cover the part the plant ran"
        )
    return out


def queries(db: str, enterprise: str) -> list[str]:
    """psql commands for what the demo produced: signals, samples, OEE, downtime, alerts, dead letters."""
    # Enterprise ids are names (a-z, 0-9, '_', '-'), never quotes: safe to show inline in a copyable command.
    mine = f"p.enterprise = '{enterprise}'" if enterprise and "'" not in enterprise else "true"
    plant = "JOIN cells c ON c.id = t.cell_id JOIN plants p ON p.id = t.plant_id"
    return [
        f"psql '{db}' -c \"SELECT path, meaning, unit FROM signal_paths ORDER BY path LIMIT 20\"",
        f"psql '{db}' -c \"SELECT sp.path, count(*), max(x.time) FROM samples x"
        " JOIN signal_paths sp ON sp.signal_id = x.signal_id GROUP BY 1 ORDER BY 1\"",
        f"psql '{db}' -c \"SELECT c.cell, t.shift_name, t.time, round(t.oee::numeric, 3) AS oee,"
        " round(t.availability::numeric, 3) AS a, round(t.performance::numeric, 3) AS p,"
        f" round(t.quality::numeric, 3) AS q FROM oee t {plant} WHERE {mine} AND t.period = 'shift'"
        " ORDER BY t.time DESC, 1\"",
        f"psql '{db}' -c \"SELECT t.reason, t.category, sum(t.stops) AS stops, round(sum(t.duration_s)) AS seconds"
        f" FROM downtime t {plant} WHERE {mine} AND t.period = 'shift' GROUP BY 1, 2 ORDER BY 4 DESC\"",
        f"psql '{db}' -c \"SELECT t.time, c.cell, t.kind, t.severity, t.status, t.message FROM alerts t {plant}"
        f" WHERE {mine} ORDER BY t.time DESC LIMIT 20\"",
        f"psql '{db}' -c \"SELECT reason, count(*) FROM dead_letters GROUP BY 1\"",
    ]


def _embedded_dir(services: Services) -> Path | None:
    for service in services.owned:
        if isinstance(service, LocalPostgres):
            return service.cluster_dir  # where the data really is, not a symlink to it
    return None


def print_summary(services: Services, pipeline: Pipeline, r: RunResult, *, keep: bool) -> None:
    s = r.snapshot
    out = click.echo
    out("")
    out("SUMMARY" + (" (interrupted: figures are of the part that ran)" if r.interrupted else ""))
    out(f"  enterprise          {pipeline.enterprise_id or '—'}")
    out(f"  wall time           {r.wall_s:.1f} s (plant ran {r.run_s:.1f} s at speed {pipeline.speed:g}x)")
    out(f"  simulated clock     {_clock(r, pipeline.speed)}")
    out(f"  signals registered  {s.signals}")
    repeats = "" if r.unique is None or r.unique == r.published else f" ({r.unique} distinct; repeats are stored once)"
    out(f"  samples published   {r.published}{repeats}")
    out(f"  samples stored      {s.samples}" + (" (by this run)" if r.earlier_samples else ""))
    for line in source_lines(pipeline):
        out(line)
    out(f"  samples/s           {s.samples / max(r.run_s, 1e-9):.0f} (while the plant ran, {r.run_s:.0f} s)")
    reasons = ", ".join(f"{k}: {v}" for k, v in s.dead_letter_reasons.items())
    out(f"  dead letters        {s.dead_letters}" + (f" ({reasons})" if reasons else ""))
    out(f"  analytics           {r.analytics}")
    for name, reason in pipeline.unavailable.items():
        out(f"  UNAVAILABLE         {name}: {reason}")
    for name, reason in r.crashed.items():
        out(f"  FAILED              {name} {reason} (log: {pipeline.log(name)})")
    if s.error:
        out(f"  database error      {s.error}")
    for line in _oee_lines(r):
        out(line)
    out("")
    db = redact_url(services.database_url)
    out(f"  data      {db} ({services.database_origin})")
    out(f"  broker    {services.mqtt_url} ({services.mqtt_origin})")
    out(f"  logs      {pipeline.work_dir / 'logs'}")
    embedded = _embedded_dir(services)
    if services.owned and keep:
        pids = " ".join(str(service.pid) for service in services.owned)
        out(f"  the embedded services keep running (stop them with: kill {pids})")
    if embedded is not None and not keep:
        out(f"  the embedded PostgreSQL is stopped now; its data stays in {embedded}")
        out("  (--keep-services leaves it running to query; the next demo with this state dir continues it)")
    else:
        out("  look at it (signals, samples, OEE per shift, downtime Pareto, alerts, dead letters):")
        for line in queries(db, pipeline.enterprise_id):
            out(f"    {line}")
    out("  read next: docs/analytics.md (OEE, downtime, energy), docs/dashboards.md, docs/alerting.md")
    out("  dashboards: an existing Grafana: datafactory grafana deploy --url http://127.0.0.1:3000 (data source")
    out("              variables DATAFACTORY_PG_*); or the whole stack: docker compose --profile demo up -d (README)")
    sys.stdout.flush()
