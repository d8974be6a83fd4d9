"""Dashboard query latency: p50/p95 of every panel query over DAYS of a plant with ~300 signals.

    python -m benchmarks.dashboards            # 30 days, 36 machines (290 signals)
    python -m benchmarks.dashboards --quick    # 3 days, same plant

Fills a fresh database with the simulator's backfill (samples at the simulator's 60 s analog period, plus state
changes and counters), runs analytics over it, adds the rows ingest would write (config, health, gateway status,
dead letters), then runs every panel query of every generated dashboard REPEAT times with the dashboard's default
time range clamped to the data (and a 30-day range for the long dashboards), Grafana's macros and variables
expanded as Grafana would (All selected). Target: p95 < 250 ms for every panel.
Last stdout line: JSON with panels, signals, days, p50_ms_median, p95_ms_max, slowest_panel, cpu_count, timescaledb.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

from datafactory.db import timescale
from datafactory.db.connect import with_database
from datafactory.db.migrate import migrate
from datafactory.settings import get_settings

DEMO_BEARING_CELL = "machining/line-1/cnc-03"


@dataclass(frozen=True, slots=True)
class FilledPlant:
    url: str
    start: datetime
    end: datetime
    signals: int
    samples: int


def fill_database(url: str, *, days: float, machines_per_line: int = 4, lines_per_area: int = 1,
                  baseline_days: int = 4, progress: bool = False) -> FilledPlant:
    """Backfill the simulated plant into ``url`` (migrated), register what ingest would, run analytics.

    The period ends at the current hour, so "now" panels (machine states, freshness) have data. The plant config
    ingest records sets a short energy baseline so that the baseline and CUSUM panels have a reporting period.
    """
    from analytics import store
    from analytics.run import run_plant
    from simulator.backfill import backfill
    from simulator.layout import demo_layout
    from simulator.model import SimOptions
    from simulator.plant_config import plant_document


    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    layout = demo_layout(machines_per_line, lines_per_area)
    saving_at = start + timedelta(days=min(baseline_days, days * 0.6))
    options = SimOptions(seed=7, analog_period_s=60.0, energy_saving_at=saving_at,
                         bearing_fault_cell=DEMO_BEARING_CELL)
    t0 = time.perf_counter()
    result = backfill(url, layout, options, start=start, end=end)
    seconds = time.perf_counter() - t0
    _log(progress, f"backfill: {result.samples:,} samples of {result.signals} signals in {seconds:.1f} s")
    doc = plant_document(layout)
    doc.setdefault("analytics", {}).setdefault("baseline", {})["baseline_days"] = baseline_days
    with psycopg.connect(url, autocommit=True) as conn:
        _register_like_ingest(conn, layout.enterprise, layout.site, doc, end)
    t0 = time.perf_counter()
    with store.session(url) as conn:
        plants = store.plants(conn)
    for plant in plants:
        run_plant(url, plant, None, None)  # incremental, as `datafactory analytics run` does
    with psycopg.connect(url, autocommit=True) as conn:  # the dashboards' hourly roll-up of the same window
        conn.execute("SELECT df_rollup_samples_hourly(%s, %s)", (start, end))
        if "samples_hourly" in timescale.continuous_aggregates(conn):
            # On TimescaleDB the roll-up is a continuous aggregate that its refresh policy materialises every 15
            # minutes; a freshly filled database has had no such run, and every panel would aggregate 30 days of
            # raw samples at query time. Measure the steady state of a running deployment instead.
            timescale.refresh_hourly_rollup_now(conn, as_the_policy=True)
    _log(progress, f"analytics: {time.perf_counter() - t0:.1f} s")
    return FilledPlant(url, start, end, result.signals, result.samples)


def _register_like_ingest(conn: psycopg.Connection, enterprise: str, site: str, doc: dict[str, object],
                          end: datetime) -> None:
    """What ingest writes from the config, status and health traffic of a running plant, and a few dead letters."""
    row = conn.execute("SELECT id FROM plants WHERE enterprise = %s AND site = %s", (enterprise, site)).fetchone()
    assert row is not None, "the backfill registers the plant"
    plant_id = row[0]
    conn.execute("INSERT INTO plant_configs (plant_id, gateway, version, config) VALUES (%s, 'gw-1', 'bench', %s)",
                 (plant_id, json.dumps(doc)))
    status = {"online": True, "gateway": "gw-1", "config_version": "bench", "config_error": None,
              "samples_per_s": 42.0, "buffer": {"batches": 3, "samples": 1200, "bytes": 65536, "max_bytes": 1 << 30},
              "dropped": {"buffer_overflow": 0}, "sources": {}}
    conn.execute("""INSERT INTO gateway_status (plant_id, gateway, online, updated_at, config_version, status)
                    VALUES (%s, 'gw-1', true, now(), 'bench', %s)""", (plant_id, json.dumps(status)))
    conn.execute("""INSERT INTO ingest_health (worker, updated_at, started_at, samples_total, messages_total,
                        samples_per_s, newest_sample, lag_s, batch_latency_ms, redeliveries, dead_letters_total,
                        batches_total, duplicates_total, conflicts_total, late_samples_total,
                        refused_messages_total, rejected_samples_total, dead_letters_by_reason,
                        database_failures_total)
                    VALUES ('ingest-1', now(), now() - interval '1 hour', 1000000, 5000, 310.5, now(), 0.8, 12.5,
                            0, 75, 400, 120, 2, 40, 50, 25,
                            '{"malformed_json": 25, "non_finite": 25, "unknown_signal": 25}', 1)""")
    conn.execute("""INSERT INTO dead_letters (received_at, last_seen, deliveries, worker, topic, plant_id, reason,
                                              detail, payload, payload_size, payload_sha256)
                    SELECT %s::timestamptz - (i || ' minutes')::interval,
                           %s::timestamptz - (i || ' minutes')::interval + (i %% 4 || ' seconds')::interval,
                           1 + i %% 4, 'ingest-1', 'df/v1/' || %s || '/' || %s || '/x',
                           %s, (ARRAY['malformed_json', 'non_finite', 'unknown_signal'])[1 + i %% 3],
                           'test dead letter ' || i, '\\x00'::bytea, 1, sha256('\\x00'::bytea)
                    FROM generate_series(1, 30) i""", (end, end, enterprise, site, plant_id))
    conn.execute("""INSERT INTO late_writes (signal_id, time_from, time_to, samples)
                    SELECT min(id), now() - interval '2 hours', now() - interval '1 hour', 10 FROM signals""")


def _already_filled(url: str) -> FilledPlant:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT min(time), max(time), count(*) FROM samples").fetchone()
        signals = conn.execute("SELECT count(*) FROM signals").fetchone()
    assert row is not None and row[0] is not None and signals is not None, f"{url} holds no samples"
    end = row[1].replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return FilledPlant(url, row[0], end, signals[0], row[2])


def _log(enabled: bool, text: str) -> None:
    if enabled:
        print(text, file=sys.stderr, flush=True)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def measure(filled: FilledPlant, repeat: int, one_machine: bool = False) -> dict[str, tuple[float, float]]:
    """Panel query name → (p50 ms, p95 ms) over ``repeat`` runs with the full data range selected, and All of
    every multi-value variable (or the first option of each with ``one_machine``)."""
    from grafana.dashboards import PLANT_AND_PLATFORM
    from grafana.panel_queries import expanded_sql, panel_queries, resolve_variables

    timings: dict[str, tuple[float, float]] = {}
    with psycopg.connect(filled.url, autocommit=True) as conn:
        variables = {d.uid: resolve_variables(conn, d, filled.start, filled.end, pick_first=one_machine)
                     for d in PLANT_AND_PLATFORM}
        for pq in panel_queries(PLANT_AND_PLATFORM):
            text = expanded_sql(pq, variables[pq.dashboard.uid], filled.start, filled.end)
            conn.execute(text).fetchall()  # warm the cache once
            samples = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                conn.execute(text).fetchall()
                samples.append((time.perf_counter() - t0) * 1000)
            timings[pq.name] = (_percentile(samples, 0.5), _percentile(samples, 0.95))
    return timings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="3 days instead of 30.")
    parser.add_argument("--days", type=float, help="Override the number of days.")
    parser.add_argument("--repeat", type=int, default=20, help="Runs per panel query.")
    parser.add_argument("--keep", action="store_true", help="Keep the filled database (its URL goes to stderr).")
    parser.add_argument("--reuse", metavar="URL", help="Measure a database an earlier --keep run filled.")
    args = parser.parse_args(argv)
    days = args.days or (3.0 if args.quick else 30.0)
    server = get_settings().database_url
    admin_url = with_database(server, "postgres")
    name = f"dfbench_dash_{uuid.uuid4().hex[:8]}"
    url = args.reuse or with_database(server, name)
    try:
        if args.reuse:
            filled = _already_filled(url)
            days = (filled.end - filled.start).total_seconds() / 86400
        else:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            migrate(url)
            # 36 machines × 8 signals + the 2-signal main meter = 290 signals.
            filled = fill_database(url, days=days, machines_per_line=6, lines_per_area=3, progress=True)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE")
            timescale = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone() is not None
        timings = measure(filled, args.repeat)
        single = measure(filled, max(3, args.repeat // 2), one_machine=True)
    finally:
        if args.keep and not args.reuse:
            _log(True, f"kept {url}")
        elif not args.reuse:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    width = max(len(n) for n in timings)
    for panel, (p50, p95) in sorted(timings.items(), key=lambda kv: -kv[1][1]):
        print(f"{panel:<{width}}  p50 {p50:8.1f} ms  p95 {p95:8.1f} ms")
    slowest = max(timings, key=lambda n: timings[n][1])
    print(json.dumps({
        "panels": len(timings),
        "signals": filled.signals,
        "days": days,
        "samples": filled.samples,
        "p50_ms_median": round(statistics.median(v[0] for v in timings.values()), 2),
        "p95_ms_max": round(timings[slowest][1], 2),
        "slowest_panel": slowest,
        "panels_over_250ms": sum(1 for v in timings.values() if v[1] >= 250),
        "p95_ms_max_one_machine": round(max(v[1] for v in single.values()), 2),
        "slowest_panel_one_machine": max(single, key=lambda n: single[n][1]),
        "cpu_count": os.cpu_count(),
        "timescaledb": timescale,
    }))


if __name__ == "__main__":
    main()
