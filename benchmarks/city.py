"""City benchmark: how many plants of the demo's size one broker, one ingest worker and one database take on this
machine, what saturates first, and how fair ingest stays when one plant floods.

    python -m benchmarks.city [--quick] [--plants 25,50,100,...] [--seconds S] [--workers W] [--flood-factor F]

Each plant is the demo plant's shape — 8 machines of 8 signals and a utility meter, 66 signals in 9 cells — with a
realistic rate mix (vibration 10 Hz; counters, power and temperature 1 Hz; state and energy 0.1 Hz, about 123
samples/s per plant), published as its gateway does: one ``df-json/2`` message per cell per second over the plant's
own MQTT connection (QoS 1), after the cells' retained meta. Load generators run in ``--generators`` processes
(default 2) beside a private Mosquitto with the shipped limits, ``--workers`` ``datafactory ingest run`` workers on a
shared subscription, and a fresh database on DATAFACTORY_DATABASE_URL's server.

Lag is measured end to end per plant: the meter's power sample is stamped with its publish time; a poller reads
the newest stored one per plant every 0.25 s, and a sample's lag is the first poll that sees it minus its stamp
(so it is over-estimated by up to 0.25 s, never under). The plant count doubles until p95 lag reaches 2 s or
ingest stores less than 95 % of what is offered; the largest count that held is then run again with plant 0
publishing ``--flood-factor`` times its samples, and the other plants' p95 lag reported.

CPU is measured per component from its processes' CPU time over each window (fraction of one core): broker,
ingest workers, the database backends serving this benchmark's database, and the load generators themselves — on a
2-core machine the generators compete with what they measure, and the output says how much they took. The ratio
reported against the machine's own limit is the machine's CPU: busy cores ÷ cores in the same window; what the
machine spent outside the benchmark's processes is reported too (``other_load_cores``), and when that is half a core
or more ``saturated_by`` says so instead of naming a component.

Last stdout line: JSON with plants, signals, samples_per_s, p50_lag_s, p95_lag_s, max_lag_s, saturated_by,
cpu_core_fraction (per component at the largest count that held and at the first that failed), steps,
p95_lag_s_others_during_flood, p95_lag_s_flooder, and (unless --no-analytics) the analytics scale-out figures of
``benchmarks.analytics_scale`` (analytics_plant_hours_per_s_1_worker, …_2_workers), cpu_count, timescaledb.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from app.harness.broker import MosquittoBroker
from benchmarks.city_load import (
    CELLS_PER_PLANT,
    METER_CELL,
    PROBE_SIGNAL,
    SAMPLES_PER_S_PER_PLANT,
    SIGNALS_PER_PLANT,
    generate,
)
from benchmarks.city_measure import (
    CpuMeter,
    Window,
    backend_pids,
    percentile,
    rounded,
    with_children,
)
from benchmarks.ingest_workers import end_sessions, worker_argv
from datafactory.contract.payload import MAX_MESSAGE_BYTES
from datafactory.db import timescale
from datafactory.db.connect import drop_database, with_database
from datafactory.db.migrate import migrate
from datafactory.settings import get_settings
from ingest.processes import stop_all

ENTERPRISE = "bench"  # worker_argv subscribes to df/v1/bench/# by default
POLL_S = 0.25


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Bench:
    def __init__(self, server: str, broker: MosquittoBroker, workers: int, generators: int) -> None:
        self.database = f"dfbench_city_{uuid.uuid4().hex[:6]}"
        self.db_url = with_database(server, self.database)
        self.broker = broker
        self.generators = generators
        migrate(self.db_url)
        share = f"city-{uuid.uuid4().hex[:6]}"
        self.names = [f"city-{i}-{uuid.uuid4().hex[:4]}" for i in range(workers)]
        self.ingest = [
            subprocess.Popen(worker_argv(self.db_url, broker.url, name, share if workers > 1 else None, 2),
                             stdout=subprocess.DEVNULL)
            for name in self.names
        ]
        self.probe_ids: dict[int, int] = {}  # signal id of each plant's probe → plant index

    def close(self) -> None:
        stop_all(self.ingest)
        end_sessions(self.broker.url, self.names)
        drop_database(self.db_url)

    def _probes(self, conn: psycopg.Connection, plants: int) -> None:
        rows = conn.execute(
            "SELECT s.id, p.site FROM signals s JOIN plants p ON p.id = s.plant_id JOIN cells c ON c.id = s.cell_id"
            " WHERE p.enterprise = %s AND c.cell = %s AND s.name = %s",
            (ENTERPRISE, METER_CELL, PROBE_SIGNAL),
        ).fetchall()
        self.probe_ids = {int(r[0]): int(str(r[1]).removeprefix("plant-")) for r in rows}
        if len(self.probe_ids) < plants:
            raise RuntimeError(f"only {len(self.probe_ids)} of {plants} plants registered their signals")

    def _stored(self, conn: psycopg.Connection) -> int:
        row = conn.execute("SELECT coalesce(sum(samples_total), 0) FROM ingest_health").fetchone()
        return int(row[0]) if row else 0

    def run(self, plants: int, seconds: float, flood_factor: int = 1, warmup_s: float = 8.0) -> Window:
        stop_at = mp.Event()
        procs = [
            mp.Process(target=generate, args=(self.broker.port, ENTERPRISE, range(g, plants, self.generators),
                                              flood_factor, stop_at), daemon=True)
            for g in range(self.generators)
        ]
        for p in procs:
            p.start()
        meter = CpuMeter()
        try:
            with psycopg.connect(self.db_url, autocommit=True) as conn:
                deadline = time.monotonic() + 60 + plants * 0.05
                while True:
                    time.sleep(1.0)
                    try:
                        self._probes(conn, plants)
                        break
                    except RuntimeError:
                        if time.monotonic() > deadline:
                            raise
                seen = self._settle(conn, warmup_s)
                groups = self._groups(conn, procs)
                stored0, t0 = self._stored(conn), time.monotonic()
                meter.start(groups)
                window = Window(plants, flood_factor, seconds, 0.0, 0.0, workers=len(self.ingest))
                while time.monotonic() - t0 < seconds:
                    time.sleep(POLL_S)
                    self._poll(conn, seen, window)
                # Health rows are refreshed every 0.2 s: the same staleness at both ends of the window.
                window.stored_per_s = (self._stored(conn) - stored0) / (time.monotonic() - t0)
                groups = self._groups(conn, procs)
                window.cpu, window.machine_busy = meter.stop(groups)
                window.offered_per_s = offered_per_s(plants, flood_factor)
                if any(p.poll() is not None for p in self.ingest):
                    raise RuntimeError("an ingest worker exited during the benchmark")
        finally:
            stop_at.set()
            for p in procs:
                p.join(30)
                if p.is_alive():
                    p.kill()
        return window

    def _settle(self, conn: psycopg.Connection, warmup_s: float, limit_s: float = 60.0) -> dict[int, float]:
        """Wait until the start-up backlog (connects, meta, registering new plants' signals) has drained: at
        least ``warmup_s``, then until a second's probes arrive in under a second (at most ``limit_s``)."""
        seen = self._newest(conn)
        started = time.monotonic()
        while True:
            probe = Window(0, 1, 0.0, 0.0, 0.0)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 1.0:
                time.sleep(POLL_S)
                self._poll(conn, seen, probe)
            lag = percentile(probe.all_lags(), 0.5)
            waited = time.monotonic() - started
            if waited >= limit_s or (waited >= warmup_s and lag is not None and lag < 1.0):
                return seen

    def _groups(self, conn: psycopg.Connection, procs: list[mp.Process]) -> dict[str, list[int]]:
        return {
            "broker": [self.broker.pid] if self.broker.pid else [],
            "ingest": with_children([p.pid for p in self.ingest]),
            "database": backend_pids(conn, self.database),
            "generators": [p.pid for p in procs if p.pid is not None],
        }

    def _newest(self, conn: psycopg.Connection) -> dict[int, float]:
        rows = conn.execute(
            "SELECT signal_id, extract(epoch FROM max(time)) FROM samples WHERE signal_id = ANY(%s)"
            " AND time > now() - interval '5 minutes' GROUP BY 1",
            (list(self.probe_ids),),
        ).fetchall()
        return {int(r[0]): float(r[1]) for r in rows}

    def _poll(self, conn: psycopg.Connection, seen: dict[int, float], window: Window) -> None:
        horizon = min(seen.values()) if seen else time.time() - 60
        rows = conn.execute(
            "SELECT signal_id, extract(epoch FROM time) FROM samples WHERE signal_id = ANY(%s)"
            " AND time > to_timestamp(%s)",
            (list(self.probe_ids), horizon),
        ).fetchall()
        now = time.time()
        for raw_sig, raw_stamp in rows:
            sig, stamp = int(raw_sig), float(raw_stamp)
            if stamp > seen.get(sig, 0.0):
                window.lags.setdefault(self.probe_ids[sig], []).append(now - stamp)
        for sig, stamp in rows:
            seen[int(sig)] = max(seen.get(int(sig), 0.0), float(stamp))


def offered_per_s(plants: int, flood_factor: int) -> float:
    return SAMPLES_PER_S_PER_PLANT * (plants - 1 + flood_factor)


def _raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 and 10 plants, 8 s windows")
    parser.add_argument("--plants", default=None, help="comma-separated plant counts (default doubling from 25)")
    parser.add_argument("--seconds", type=float, default=None, help="measurement window per count (default 20)")
    parser.add_argument("--workers", type=int, default=1, help="ingest workers on a shared subscription")
    parser.add_argument("--generators", type=int, default=2, help="load generator processes")
    parser.add_argument("--flood-factor", type=int, default=20, help="plant 0's samples × this in the flood run")
    parser.add_argument("--no-analytics", action="store_true",
                        help="skip benchmarks.analytics_scale (plant-hours per second with 1 and 2 analytics workers)")
    args = parser.parse_args()
    counts = [int(x) for x in args.plants.split(",")] if args.plants else (
        [5, 10] if args.quick else [25, 50, 100, 200, 400, 800, 1600])
    seconds = args.seconds or (8.0 if args.quick else 20.0)
    _raise_fd_limit()
    server = get_settings().database_url
    steps: list[Window] = []
    with tempfile.TemporaryDirectory(prefix="dfbench-city-") as tmp:
        config = f"message_size_limit {MAX_MESSAGE_BYTES}\nmax_queued_messages 100000\n"
        with MosquittoBroker(data_dir=Path(tmp) / "mq", extra_config=config, persistence=False) as broker:
            bench = Bench(server, broker, args.workers, args.generators)
            try:
                with psycopg.connect(bench.db_url) as conn:
                    ts = timescale.installed(conn)
                log(f"city benchmark: {SIGNALS_PER_PLANT} signals in {CELLS_PER_PLANT} cells per plant, "
                    f"{args.workers} ingest worker(s), broker {broker.url}, TimescaleDB {ts}")
                for n in counts:
                    w = bench.run(n, seconds)
                    steps.append(w)
                    log(f"  {json.dumps(w.summary())}")
                    if not w.held:
                        break
                held = [w for w in steps if w.held]
                best = held[-1] if held else None
                flood = bench.run(best.plants, seconds, flood_factor=args.flood_factor) if best else None
                if flood is not None:
                    log(f"  flood: {json.dumps(flood.summary())}")
            finally:
                bench.close()
    failed = next((w for w in steps if not w.held), None)
    out = result(best, failed, flood, steps, flood_factor=args.flood_factor, ts=ts)
    if not args.no_analytics:
        out |= analytics_scale(quick=args.quick)
    print(json.dumps(out))


def analytics_scale(*, quick: bool) -> dict[str, object]:
    """The analytics side of a city: ``benchmarks.analytics_scale`` (an hour of 100 demo-size plants; --quick: 10)
    run as it runs on its own; its rates under the keys it prints."""
    log("analytics scale-out (benchmarks.analytics_scale)")
    argv = [sys.executable, "-m", "benchmarks.analytics_scale", *(["--quick"] if quick else [])]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    keys = ("analytics_plant_hours_per_s_1_worker", "analytics_plant_hours_per_s_2_workers",
            "seconds_per_100_plant_hours_2_workers", "scaling_efficiency")
    return {k: figures.get(k) for k in keys} | {"analytics_plants": figures.get("plants")}


def saturated_by(window: Window | None) -> str | None:
    """The component closest to its limit: a single-threaded broker or a worker's Python at one core each, the
    database and the generators at what they can take of the machine."""
    if window is None:
        return None
    if window.other_load > 0.5:
        # Half a core or more went to processes outside the benchmark: no component reached its own limit.
        return "other load on this machine"
    load = {
        "broker": window.cpu.get("broker", 0.0),
        "ingest": window.cpu.get("ingest", 0.0) / window.workers,
        "database": window.cpu.get("database", 0.0) / (os.cpu_count() or 1),
        "load generators": window.cpu.get("generators", 0.0) / (os.cpu_count() or 1),
    }
    return max(load, key=lambda k: load[k])


def result(best: Window | None, failed: Window | None, flood: Window | None, steps: list[Window], *,
           flood_factor: int, ts: bool) -> dict[str, object]:
    base = best.summary() if best else {}
    return {
        "plants": best.plants if best else 0,
        "signals": (best.plants if best else 0) * SIGNALS_PER_PLANT,
        "signals_per_plant": SIGNALS_PER_PLANT,
        "samples_per_s": base.get("samples_per_s"),
        "p50_lag_s": base.get("p50_lag_s"),
        "p95_lag_s": base.get("p95_lag_s"),
        "max_lag_s": base.get("max_lag_s"),
        "saturated_by": saturated_by(failed or best),
        "saturation_reached": failed is not None,
        "cpu_core_fraction_held": base.get("cpu_core_fraction"),
        "cpu_core_fraction_failed": failed.summary()["cpu_core_fraction"] if failed else None,
        "machine_busy_held": base.get("machine_busy"),
        "flood_factor": flood_factor,
        "p95_lag_s_others_during_flood": rounded(percentile(flood.all_lags(without=0), 0.95)) if flood else None,
        "p95_lag_s_flooder": rounded(percentile(flood.lags.get(0, []), 0.95)) if flood else None,
        "samples_per_s_during_flood": round(flood.stored_per_s) if flood else None,
        "steps": [w.summary() for w in steps],
        "cpu_count": os.cpu_count(),
        "timescaledb": ts,
    }


if __name__ == "__main__":
    main()
