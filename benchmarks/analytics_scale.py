"""Analytics scale-out: plant-hours computed per second by 1 and by 2 ``analytics run --worker`` processes.

    python -m benchmarks.analytics_scale              # an hour of 100 demo-size plants (issue 24)
    python -m benchmarks.analytics_scale --quick      # an hour of 10
    python -m benchmarks.analytics_scale --plants 40 --hours 2

Steps, in fresh databases of its own (dropped afterwards): the simulator backfills ``--hours`` of N plants of the
demo's size (8 machines and a utility meter each, 60 s analog period, every state change and unit counted); the
database is copied twice (``CREATE DATABASE … TEMPLATE``); one worker computes every plant of the first copy, then
two workers the second, each a real ``python -m app analytics run --worker`` process sharing the work table. Wall
time runs from starting the processes to the last one exiting (interpreter start included); ``…_compute_only``
figures run from the first claim to the last completion in the work table.

Last stdout line: JSON with plants, hours, plant_hours, analytics_plant_hours_per_s_1_worker, …_2_workers, the
compute-only rates, ratio_2_vs_1_worker, scaling_efficiency (that ratio over min(2, cpu_count): 1.0 is linear),
seconds_per_100_plant_hours_2_workers (target < 60), cpu_count, load_avg_1m at the start and at the end
(the machine may be shared: other load takes cores from the workers), timescaledb.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from datafactory.db.connect import database_name, drop_database, with_database
from datafactory.db.migrate import migrate
from datafactory.settings import Settings
from simulator.backfill import backfill
from simulator.layout import demo_layout
from simulator.model import SimOptions

ROOT = Path(__file__).resolve().parents[1]


def _copy(url: str, name: str) -> str:
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                     (database_name(url),))
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(database_name(url))))
    return with_database(url, name)


def _workers(url: str, n: int) -> tuple[float, float]:
    """Wall seconds of ``n`` workers computing every plant, and seconds from first claim to last completion."""
    argv = [sys.executable, "-m", "app", "analytics", "--database-url", url, "run", "--worker"]
    t0 = time.perf_counter()
    procs = [subprocess.Popen([*argv, "--name", f"bench-{i}"], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for i in range(n)]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"analytics worker failed (exit {proc.returncode}): {err.strip()[-500:]}")
    wall = time.perf_counter() - t0
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT extract(epoch FROM max(done_at) - min(claimed_at)), count(*) FILTER"
                           " (WHERE done_claimed_at >= requested_at AND failures = 0) FROM analytics_work").fetchone()
    assert row is not None
    return wall, float(row[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 plants instead of 100")
    parser.add_argument("--plants", type=int, help="plants of the demo's size (default 100, or 10 with --quick)")
    parser.add_argument("--hours", type=int, default=1, help="simulated hours per plant (default 1)")
    args = parser.parse_args()
    plants = args.plants or (10 if args.quick else 100)
    base = Settings().database_url
    tag = uuid.uuid4().hex[:8]
    url = with_database(base, f"df_bench_scale_{tag}")
    copies: list[str] = []
    load = os.getloadavg()[0]
    start = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # Monday 08:00 plant-local: a working hour of the day shift
    try:
        timescaledb = migrate(url).timescale
        t0 = time.perf_counter()
        samples = 0
        for i in range(plants):
            layout = replace(demo_layout(), enterprise=f"bench-{i:04d}", site="plant")
            samples += backfill(url, layout, SimOptions(seed=1000 + i, analog_period_s=60.0), start=start,
                                end=start + timedelta(hours=args.hours)).samples
        print(f"backfilled {samples:,} samples of {plants} plants × {args.hours} h in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr)
        copies = [_copy(url, f"df_bench_scale_{tag}_{n}w") for n in (1, 2)]
        results = {}
        for n, copy in zip((1, 2), copies, strict=True):
            wall, compute = _workers(copy, n)
            results[n] = (wall, compute)
            print(f"{n} worker(s): {wall:.1f} s wall, {compute:.1f} s from first claim to last completion",
                  file=sys.stderr)
    finally:
        for u in [url, *copies]:
            drop_database(u)
    plant_hours = plants * args.hours
    rate = {n: plant_hours / wall for n, (wall, _) in results.items()}
    compute_rate = {n: plant_hours / compute for n, (_, compute) in results.items()}
    cpus = os.cpu_count() or 1
    ratio = rate[2] / rate[1]
    print(json.dumps({
        "plants": plants, "hours": args.hours, "plant_hours": plant_hours, "samples": samples,
        "analytics_plant_hours_per_s_1_worker": round(rate[1], 3),
        "analytics_plant_hours_per_s_2_workers": round(rate[2], 3),
        "compute_only_plant_hours_per_s_1_worker": round(compute_rate[1], 3),
        "compute_only_plant_hours_per_s_2_workers": round(compute_rate[2], 3),
        "ratio_2_vs_1_worker": round(ratio, 3),
        "scaling_efficiency": round(ratio / min(2, cpus), 3),
        "seconds_per_100_plant_hours_2_workers": round(100 / rate[2], 1),
        "cpu_count": cpus, "load_avg_1m": round(load, 2), "load_avg_1m_end": round(os.getloadavg()[0], 2),
        "timescaledb": timescaledb,
    }))


if __name__ == "__main__":
    main()
