"""Analytics cost: a month of OEE and energy for the demo plant from raw samples, and one new hour on top.

    python -m benchmarks.analytics            # 30 simulated days of the 8-machine demo plant
    python -m benchmarks.analytics --quick    # 3 days

Steps, in a fresh database of its own (dropped afterwards): the simulator backfills N days of the demo plant
(60 s analog period, every state change and every unit counted); ``analytics`` computes everything for the range
from raw samples (``month_seconds`` — for N = 30 days a month; state intervals, hour/shift/day/month OEE,
downtime, energy with TOU cost, PdM health and alerts, the energy baseline); then one more simulated hour is
backfilled and an incremental ``run`` is timed (``hour_increment_seconds``: the new hour from raw samples, then the
shift/day/month roll-ups, the PdM refresh and the baseline refit).

Last stdout line: JSON with samples, machines, days, month_seconds, hour_increment_seconds, cpu_count, timescaledb.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import pandas as pd

from analytics import store
from analytics.run import run_plant
from datafactory.db.connect import drop_database, with_database
from datafactory.db.migrate import migrate
from datafactory.settings import Settings
from simulator.backfill import backfill
from simulator.layout import demo_layout
from simulator.model import SimOptions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 days instead of 30")
    parser.add_argument("--days", type=int, help="simulated days (default 30, or 3 with --quick)")
    args = parser.parse_args()
    days = args.days or (3 if args.quick else 30)
    url = with_database(Settings().database_url, f"df_bench_analytics_{uuid.uuid4().hex[:8]}")
    layout = demo_layout()
    start = datetime(2026, 3, 1, 16, 0, tzinfo=UTC)  # a plant-local Monday midnight
    end = start + timedelta(days=days)
    try:
        timescaledb = migrate(url).timescale
        options = SimOptions(seed=1, analog_period_s=60.0)
        t0 = time.perf_counter()
        loaded = backfill(url, layout, options, start=start, end=end)
        print(f"backfilled {loaded.samples:,} samples of {days} days in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr)
        with store.session(url) as conn:
            plant = store.plants(conn)[0]
        t0 = time.perf_counter()
        full = run_plant(url, plant, pd.Timestamp(start), pd.Timestamp(end))
        month_seconds = time.perf_counter() - t0
        print(f"analytics over {days} days: {month_seconds:.1f} s {full.rows}", file=sys.stderr)
        extra = backfill(url, layout, options, start=end, end=end + timedelta(hours=1))
        t0 = time.perf_counter()
        inc = run_plant(url, plant, None, None)
        hour_seconds = time.perf_counter() - t0
        print(f"one more hour ({extra.samples:,} samples): {hour_seconds:.2f} s {inc.rows}", file=sys.stderr)
    finally:
        drop_database(url)
    print(json.dumps({
        "samples": loaded.samples, "machines": len(layout.machines), "days": days,
        "month_seconds": round(month_seconds, 2), "hour_increment_seconds": round(hour_seconds, 2),
        "samples_per_s": round(loaded.samples / month_seconds), "cpu_count": os.cpu_count(),
        "timescaledb": timescaledb,
    }))


if __name__ == "__main__":
    main()
