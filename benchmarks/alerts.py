"""Alert rule evaluation: one round of ``alerts run`` over 100 plants × 20 rules against 30 days of data.

    python -m benchmarks.alerts            # 100 plants, 20 rules each, 30 days (target: a round < 5 s)
    python -m benchmarks.alerts --quick    # 10 plants, 3 days

In a fresh database of its own (dropped afterwards): N copies of the demo plant (8 machines and a meter each) are
registered with 20 rules each (every kind; the contracted maximum demand differs per plant, as contracts do, so
those rules cannot share a query) and their configs stored in ``plant_configs`` as gateways deploy them. Then the
data the rules read is written for D days up to now, in SQL: a machine-state sample every 10 minutes per machine
(~5 % of machines end in an unplanned stop), hourly and shift OEE rows per machine, hourly energy rows of the
meter, daily baseline rows, PdM alerts, gateway status (a few offline, a few failed sources), dataset alerts,
ingest health and dead letters. The other signals' samples are not written: no rule reads them, and the rules'
sample reads are index probes per state signal, whose cost does not depend on other signals' rows.

A round is what the service does every interval: read and validate the plants' configs from ``plant_configs``,
evaluate every rule, update the lifecycle and enqueue (no receivers here, so nothing is sent), commit. The first
round opens every alert (``first_round_seconds``); ``round_seconds`` is the median of the following rounds (the
steady state). The reference measured in the same run is ``queries_seconds``: the rules' own queries alone
(``alerting.engine`` grouping and SQL, rows parsed, no lifecycle writes) — the database's cost of answering the
questions, which a round cannot go below; ``ratio_vs_queries`` = round ÷ that.

Last stdout line: JSON with plants, rules, days, round_seconds, first_round_seconds, queries_seconds,
ratio_vs_queries, alerts_open, queries_per_round, samples, cpu_count, timescaledb.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from alerting.engine import Plant, RoundStats, _conditions
from alerting.service import AlertService, plants_from
from datafactory.config.loader import validate_document
from datafactory.db.connect import drop_database, with_database
from datafactory.db.migrate import migrate
from datafactory.db.partitions import ensure_partitions
from datafactory.db.registry import register_config
from datafactory.settings import Settings
from simulator.layout import demo_layout
from simulator.plant_config import plant_document


def rules(i: int) -> list[dict[str, Any]]:
    """Twenty rules of every kind; the contracted maximum demand is the plant's own."""
    return [
        {"id": "machine-down", "kind": "machine_down", "severity": "critical", "for_s": 600},
        {"id": "machine-stopped", "kind": "machine_down", "categories": ["unplanned_stop", "changeover"],
         "for_s": 3600},
        {"id": "oee-rolling", "kind": "oee_below", "target": 0.6, "window_h": 4},
        {"id": "availability-rolling", "kind": "oee_below", "metric": "availability", "target": 0.7},
        {"id": "performance-rolling", "kind": "oee_below", "metric": "performance", "target": 0.8},
        {"id": "quality-rolling", "kind": "oee_below", "metric": "quality", "target": 0.95},
        {"id": "oee-shift", "kind": "oee_below", "window": "shift", "target": 0.6},
        {"id": "quality-shift", "kind": "oee_below", "metric": "quality", "window": "shift", "target": 0.97},
        {"id": "oee-day", "kind": "oee_below", "target": 0.55, "window_h": 24},
        {"id": "pdm-warning", "kind": "pdm_alert"},
        {"id": "pdm-critical", "kind": "pdm_alert", "min_severity": "critical", "severity": "critical"},
        {"id": "peak-demand", "kind": "peak_demand", "max_kw": 400 + 5 * i, "severity": "critical"},
        {"id": "peak-demand-week", "kind": "peak_demand", "max_kw": 450 + 5 * i, "window_h": 168},
        {"id": "specific-energy", "kind": "specific_energy", "above_pct": 10},
        {"id": "specific-energy-week", "kind": "specific_energy", "above_pct": 5, "days": 7},
        {"id": "gateway-offline", "kind": "gateway_offline", "for_s": 60},
        {"id": "source-failed", "kind": "gateway_offline", "source_states": ["disconnected", "error"]},
        {"id": "dataset-late", "kind": "dataset_late", "severity": "info"},
        {"id": "ingest-health", "kind": "ingest", "for_s": 120},
        {"id": "ingest-strict", "kind": "ingest", "max_lag_s": 10, "max_dead_letters": 10, "window_s": 3600},
    ]


FILL = """
INSERT INTO samples (time, signal_id, value)
SELECT t, s.id, CASE WHEN t = %(last)s AND s.id %% 20 = 0 THEN 510
                     WHEN random() < 0.9 THEN 100 WHEN random() < 0.5 THEN 300 ELSE 510 END
FROM signals s CROSS JOIN generate_series(%(last)s - %(span)s::interval, %(last)s, interval '10 minutes') t
WHERE s.meaning = 'machine_state';

INSERT INTO oee (plant_id, cell_id, period, time, time_end, shift_name, calendar_s, planned_down_s, pbt_s, apt_s,
                 adet_s, asut_s, adot_s, unknown_s, microstop_s, microstop_count, stop_count, changeover_count,
                 total_count, good_count, reject_count, ideal_cycle_time_s, ideal_production_s)
SELECT c.plant_id, c.id, p.period, t, t + p.len, p.shift, extract(epoch FROM p.len), 0, x.pbt, x.apt, 0, 0,
       x.pbt - x.apt, 0, 0, 0, 1, 0, x.apt / 45, x.apt / 45 * 0.98, x.apt / 45 * 0.02, 45, x.apt
FROM cells c
CROSS JOIN (VALUES ('hour', interval '1 hour', ''), ('shift', interval '12 hours', 'day')) p(period, len, shift)
CROSS JOIN LATERAL generate_series(date_trunc('hour', %(last)s) - %(span)s::interval,
                                   date_trunc('hour', %(last)s) - p.len, p.len) t
CROSS JOIN LATERAL (SELECT extract(epoch FROM p.len) AS pbt,
                           extract(epoch FROM p.len) * (0.5 + 0.5 * random()) AS apt) x
WHERE EXISTS (SELECT 1 FROM signals s WHERE s.cell_id = c.id AND s.meaning = 'machine_state');

INSERT INTO energy (plant_id, cell_id, period, time, time_end, kwh, idle_kwh, kwh_critical, kwh_peak, kwh_flat,
                    kwh_valley, cost, cost_critical, cost_peak, cost_flat, cost_valley, peak_kw_15min, avg_kw, tce,
                    good_count, source)
SELECT c.plant_id, c.id, 'hour', t, t + interval '1 hour', k, 0, 0, k, 0, 0, 0, 0, 0, 0, 0, k * 1.2, k, 0, 0,
       'meter'
FROM cells c CROSS JOIN generate_series(date_trunc('hour', %(last)s) - %(span)s::interval,
                                        date_trunc('hour', %(last)s) - interval '1 hour', interval '1 hour') t
CROSS JOIN LATERAL (SELECT 300 + 200 * random() AS k) e
WHERE c.cell = 'main-meter';

INSERT INTO energy_baseline_daily (plant_id, time, time_end, phase, actual_kwh, production, expected_kwh,
                                   pi_low_kwh, pi_high_kwh, savings_kwh, cusum_kwh)
SELECT p.id, d, d + interval '1 day', 'reporting', 9000 + 2000 * random(), 1000, 10000, 9000, 11000, 0, 0
FROM plants p CROSS JOIN generate_series(date_trunc('day', %(last)s) - %(span)s::interval,
                                         date_trunc('day', %(last)s) - interval '1 day', interval '1 day') d;

INSERT INTO alerts (plant_id, cell_id, signal_id, kind, time, status, severity, updated_at, message)
SELECT s.plant_id, s.cell_id, s.id, 'pdm_drift', %(last)s - interval '3 hours', 'raised',
       CASE WHEN s.id %% 2 = 0 THEN 'critical' ELSE 'warning' END, %(last)s, 'vibration drifting upwards'
FROM signals s WHERE s.meaning = 'vibration' AND s.id %% 13 = 0;

INSERT INTO gateway_status (plant_id, gateway, online, updated_at, status)
SELECT p.id, 'gw-1', p.id %% 25 <> 0, %(last)s - interval '5 seconds',
       jsonb_build_object('sources', jsonb_build_object(
           'opcua', jsonb_build_object('state', CASE WHEN p.id %% 17 = 0 THEN 'disconnected' ELSE 'connected' END),
           'meter', jsonb_build_object('state', 'connected')))
FROM plants p;

INSERT INTO dataset_alerts (dataset, opened_at) VALUES ('samples', %(last)s - interval '20 minutes');

INSERT INTO ingest_health (worker, updated_at, started_at, lag_s)
SELECT 'ingest-' || w, %(last)s, %(last)s - interval '1 day', w * 4.0 FROM generate_series(1, 4) w;

INSERT INTO dead_letters (received_at, topic, plant_id, reason, detail)
SELECT %(last)s - random() * %(span)s::interval, 'df/v1/x', p.id, 'malformed_json', 'bench'
FROM plants p CROSS JOIN generate_series(1, 100);
"""


def fill(url: str, plants: int, days: int, now: datetime, timescaledb: bool) -> int:
    layout = demo_layout()
    with psycopg.connect(url) as conn:
        if not timescaledb:
            ensure_partitions(conn, (now - timedelta(days=days + 1)).date(), now.date())
        for i in range(plants):
            doc = plant_document(layout)
            doc["enterprise"]["id"] = f"bench-{i:03d}"
            doc["site"]["id"] = "site-1"
            doc["alerting"] = {"rules": rules(i)}
            cfg = validate_document(doc)
            register_config(conn, cfg)
            conn.execute("INSERT INTO plant_configs (plant_id, gateway, version, config)"
                         " SELECT id, 'gw-1', 'v1', %s FROM plants WHERE enterprise = %s",
                         (Jsonb(doc), cfg.enterprise.id))
        for statement in FILL.split(";\n"):
            if statement.strip():
                conn.execute(statement, {"last": now, "span": f"{days} days"})
        conn.commit()
        conn.execute("ANALYZE")
        (samples,) = conn.execute("SELECT count(*) FROM samples").fetchone() or (0,)
    return int(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 plants and 3 days")
    parser.add_argument("--plants", type=int, help="plants (default 100, or 10 with --quick)")
    parser.add_argument("--days", type=int, help="days of data (default 30, or 3 with --quick)")
    parser.add_argument("--rounds", type=int, default=5, help="steady-state rounds measured (default 5)")
    args = parser.parse_args()
    plants = args.plants or (10 if args.quick else 100)
    days = args.days or (3 if args.quick else 30)
    url = with_database(Settings().database_url, f"df_bench_alerts_{uuid.uuid4().hex[:8]}")
    now = datetime.now(UTC)
    try:
        timescaledb = migrate(url).timescale
        t0 = time.perf_counter()
        samples = fill(url, plants, days, now, timescaledb)
        print(f"filled {plants} plants × {days} days ({samples:,} state samples) in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr)
        svc = AlertService(url, [], env={})
        t0 = time.perf_counter()
        stats, _ = svc.round()
        first = time.perf_counter() - t0
        n_rules = sum(len(rules(i)) for i in range(plants))
        print(f"first round: {first:.2f} s, {stats.opened} alerts opened, {stats.queries} queries", file=sys.stderr)
        steady = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            stats, _ = svc.round()
            steady.append(time.perf_counter() - t0)
        queries = []
        with psycopg.connect(url) as conn:
            loaded = [Plant(p.id, p.config) for p in plants_from(conn, [])]
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                _conditions(conn, loaded, datetime.now(UTC), RoundStats())
                queries.append(time.perf_counter() - t0)
                conn.rollback()
            (open_alerts,) = conn.execute(
                "SELECT count(*) FROM alert_instances WHERE status <> 'resolved'").fetchone() or (0,)
        round_s, queries_s = statistics.median(steady), statistics.median(queries)
        print(f"steady rounds: {', '.join(f'{s:.2f}' for s in steady)} s; queries alone {queries_s:.2f} s; "
              f"{open_alerts} alerts open", file=sys.stderr)
        result = {
            "plants": plants, "rules": n_rules, "rules_per_plant": n_rules // plants, "days": days,
            "round_seconds": round(round_s, 3), "first_round_seconds": round(first, 3),
            "queries_seconds": round(queries_s, 3), "ratio_vs_queries": round(round_s / queries_s, 2),
            "target_seconds": 5.0, "within_target": round_s < 5.0, "queries_per_round": stats.queries,
            "alerts_open": int(open_alerts), "samples": samples, "cpu_count": os.cpu_count(),
            "timescaledb": timescaledb,
        }
        print(json.dumps(result))
    finally:
        drop_database(url)


if __name__ == "__main__":
    main()
