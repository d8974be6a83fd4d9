"""Ingest benchmark: N samples (5 million; --quick: 300,000) in messages of 100 samples (10 cells × 100 signals)
published to a broker and drained into a fresh database by one `datafactory ingest run` worker with its default
writer lanes (``--writers``), by two workers sharing a subscription, by one and two workers with one lane
each, and by one ``ingest run --processes 2`` (two worker processes of one lane each in one share group), float64
and mixed; then once more by one worker from messages as full as the gateway's default batch (500 samples).
As the machine's own ceiling, `psql \\copy` of the same rows (CSV) into the same table definition is timed
too, before and after the ingest runs (the two are averaged), and so is the ceiling that matches how the worker
writes: binary COPY of the same rows, packed beforehand, in the worker's batch size over as many connections as
the worker has writer lanes (``benchmarks.ingest_typed``). A mixed-type run (85 % float64, 10 % int64 beyond
2^53, 5 % strings, declared in the meta, df-json/2) is drained by one worker too.

    python -m benchmarks.ingest [--quick] [--samples N]

The broker is a private Mosquitto with an unlimited per-client queue (``max_queued_messages 0``): the whole
backlog is published first while the workers are offline (their persistent sessions exist), then the workers
start and the clock runs from their start (``ingest_health.started_at``) until every sample is committed. The
shared broker's default queue limit (1000 messages per client) would drop such a backlog. The database server
comes from DATAFACTORY_DATABASE_URL (default the local PostgreSQL); each run uses fresh databases, dropped after.

Last stdout line: JSON with samples, samples_per_s (one worker), samples_per_s_2_workers, samples_per_s_1_lane,
samples_per_s_2_workers_1_lane, samples_per_s_mixed_types, samples_per_s_processes_2,
samples_per_s_mixed_types_processes_2, samples_per_s_500_per_message, copy_samples_per_s (psql \\copy, the mean of
copy_samples_per_s_each), copy_binary_parallel_samples_per_s (the ceiling, mean of …_each), ratio_vs_copy and
ratio_mixed_vs_copy (against that ceiling), ratio_2_workers_vs_copy, ratio_processes_2_vs_copy,
ratio_mixed_processes_2_vs_copy, ratio_500_per_message_vs_copy, ratio_vs_psql_copy, bytes_per_sample,
bytes_per_sample_mixed_types (both tables per sample), bytes_per_sample_compressed (on the realistic signal mix of
benchmarks.signal_mix; null without TimescaleDB), writers_per_worker, cpu_count, timescaledb.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from app.harness.broker import MosquittoBroker
from benchmarks import ingest_typed, storage
from benchmarks.ingest_workers import end_sessions, wait_health, worker_argv
from datafactory.config.models import GatewayConfig
from datafactory.contract.sample import now_us
from datafactory.contract.topics import CellPath, TopicKind
from datafactory.db import timescale
from datafactory.db.connect import drop_database, with_database
from datafactory.db.migrate import migrate
from datafactory.settings import get_settings
from ingest.options import IngestOptions
from ingest.processes import stop_all

CELLS = 10
SIGNALS_PER_CELL = 100
STEP_US = 100_000
FULL_TICKS = GatewayConfig.model_fields["batch_max_samples"].default // SIGNALS_PER_CELL  # ticks per full message
PROCESSES = 2  # the --processes run: one lane each, as many connections as the default worker's lanes
ENTERPRISE = "bench"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cells(*, mixed: bool = False) -> list[CellPath]:
    """The float64 runs' cells, or the mixed run's own: the broker keeps each cell's retained meta, and a worker
    must not first learn the mixed signals as the float64 run declared them."""
    prefix = "mixed" if mixed else "cell"
    return [CellPath(ENTERPRISE, "site-1", "area-1", "line-1", f"{prefix}-{c:02d}") for c in range(CELLS)]


def publish_all(
    broker_url: str, samples: int, start_us: int, *, mixed: bool = False, ticks_per_message: int = 1
) -> float:
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"bench-pub-{uuid.uuid4().hex[:6]}",
        protocol=mqtt.MQTTv5,
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    port = int(broker_url.rsplit(":", 1)[1])
    client.connect("127.0.0.1", port)
    client.loop_start()
    started = time.monotonic()
    for c in cells(mixed=mixed):
        meta = ingest_typed.meta(SIGNALS_PER_CELL, mixed=mixed)
        client.publish(c.topic(TopicKind.META), meta, qos=1, retain=True).wait_for_publish(30)
    ticks = samples // (CELLS * SIGNALS_PER_CELL)
    messages = ingest_typed.payloads(
        cells(mixed=mixed), SIGNALS_PER_CELL, ticks, start_us, STEP_US, mixed=mixed, ticks_per_message=ticks_per_message
    )
    infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:  # every QoS 1 PUBACK received: the broker holds the whole backlog
        info.wait_for_publish(600)
    elapsed = time.monotonic() - started
    client.disconnect()
    client.loop_stop()
    return elapsed


def run_ingest(
    server: str,
    broker_url: str,
    samples: int,
    workers: int,
    writers: int,
    *,
    mixed: bool = False,
    processes: int = 1,
    ticks_per_message: int = 1,
) -> tuple[float, str]:
    """Return (samples per second, database URL) for ``workers`` workers (each ``processes`` processes) with
    ``writers`` lanes per process draining a pre-published backlog (of mixed types with ``mixed``)."""
    db_url = with_database(server, f"dfbench_ingest_{workers}w{processes}p{writers}l_{uuid.uuid4().hex[:6]}")
    migrate(db_url)
    try:
        return _drain(
            db_url,
            broker_url,
            samples,
            workers,
            writers,
            mixed=mixed,
            processes=processes,
            ticks_per_message=ticks_per_message,
        )
    except BaseException:
        drop_database(db_url)
        raise


def _drain(
    db_url: str,
    broker_url: str,
    samples: int,
    workers: int,
    writers: int,
    *,
    mixed: bool,
    processes: int,
    ticks_per_message: int,
) -> tuple[float, str]:
    names = [f"bench-{workers}w{processes}p{writers}l-{i}-{uuid.uuid4().hex[:4]}" for i in range(workers)]
    # The MQTT sessions: one per worker process (a service of several processes names them <name>-1 …).
    sessions = names if processes == 1 else [f"{n}-{k}" for n in names for k in range(1, processes + 1)]
    # A share group of this run's own: the sessions of earlier runs must not take a share of its messages.
    share = f"bench-{uuid.uuid4().hex[:6]}" if workers > 1 or processes > 1 else None

    def start() -> list[subprocess.Popen[bytes]]:
        return [
            subprocess.Popen(worker_argv(db_url, broker_url, n, share, writers, processes=processes)) for n in names
        ]

    # First start: creates the persistent sessions and subscriptions; then offline while the backlog builds.
    procs = start()
    try:
        wait_health(db_url, len(sessions))
    finally:
        stop_all(procs)
    with psycopg.connect(db_url) as conn:
        conn.execute("DELETE FROM ingest_health")
        conn.commit()
    start_us = now_us() - 3_600_000_000
    log(f"  publishing {samples:,} samples for {workers} worker(s) with {writers} lane(s) each …")
    pub_s = publish_all(broker_url, samples, start_us, mixed=mixed, ticks_per_message=ticks_per_message)
    log(f"  published in {pub_s:.1f} s ({samples / pub_s:,.0f} samples/s); starting {workers} worker(s)")
    procs = start()
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            deadline = time.monotonic() + 3600
            while time.monotonic() < deadline:
                row = conn.execute(
                    "SELECT coalesce(sum(samples_total), 0), count(*), extract(epoch FROM now() - min(started_at))"
                    " FROM ingest_health"
                ).fetchone()
                assert row is not None
                if row[1] == len(sessions) and row[0] >= samples:
                    elapsed = float(row[2])
                    break
                if any(p.poll() is not None for p in procs):
                    raise RuntimeError("an ingest worker exited during the benchmark")
                time.sleep(0.1)
            else:
                raise RuntimeError("ingest did not finish within an hour")
            stored = conn.execute("SELECT count(*) FROM sample_values").fetchone()
            dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
    finally:
        stop_all(procs)
        end_sessions(broker_url, sessions)
    assert stored is not None and dead is not None
    if stored[0] != samples or dead[0] != 0:
        raise RuntimeError(f"stored {stored[0]} of {samples} samples, {dead[0]} dead letters")
    rate = samples / elapsed
    kind = "mixed types" if mixed else "float64"
    shape = f"{workers} worker(s)" + (f" of {processes} processes" if processes > 1 else "")
    log(
        f"  {shape}, {writers} lane(s) each, {kind}: {samples:,} samples in {elapsed:.1f} s"
        f" = {rate:,.0f} samples/s"
    )
    return rate, db_url


def bytes_per_sample(db_url: str) -> tuple[float, bool]:
    with psycopg.connect(db_url) as conn:
        size, rows = storage.samples_size(conn)
        return size / rows, timescale.installed(conn)


def compressed_bytes_per_sample(db_url: str) -> float | None:
    with psycopg.connect(db_url) as conn:
        if not timescale.installed(conn):
            return None
        timescale.compress_all(conn)
        conn.commit()
        size, rows = storage.samples_size(conn)
    return size / rows


def run_copy(server: str, samples: int, workdir: Path) -> float:
    """psql \\copy of the same rows (CSV) into a fresh, migrated database: the machine's ceiling."""
    db_url = with_database(server, f"dfbench_copy_{uuid.uuid4().hex[:6]}")
    migrate(db_url)
    try:
        ticks = samples // (CELLS * SIGNALS_PER_CELL)
        signals = CELLS * SIGNALS_PER_CELL
        start_us = now_us() - 3_600_000_000
        path = workdir / "samples.csv"
        psql = shutil.which("psql")
        if psql is None:
            raise RuntimeError("psql is not installed")
        log(f"  writing {ticks * signals:,} rows of CSV …")
        # The same rows the gateways published (signal, time, value, quality), generated by the server: faster
        # than formatting millions of lines in Python, and not part of the timing.
        generate = (
            f"SELECT s, timestamptz 'epoch' + ({start_us} + t::bigint * {STEP_US}) * interval '1 microsecond',"
            f" t * 0.5 + (s - 1) / {SIGNALS_PER_CELL} + ((s - 1) % {SIGNALS_PER_CELL}) * 0.001, 0"
            f" FROM generate_series(0, {ticks - 1}) t, generate_series(1, {signals}) s"
        )
        subprocess.run(
            [psql, db_url, "-v", "ON_ERROR_STOP=1", "-q", "-c", f"\\copy ({generate}) TO '{path}' WITH (FORMAT csv)"],
            check=True,
        )
        started = time.monotonic()
        subprocess.run(
            [
                psql,
                db_url,
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-c",
                f"\\copy samples (signal_id, time, value, quality) FROM '{path}' WITH (FORMAT csv)",
            ],
            check=True,
        )
        elapsed = time.monotonic() - started
    finally:
        drop_database(db_url)
    rate = ticks * signals / elapsed
    log(f"  psql \\copy: {ticks * signals:,} rows in {elapsed:.1f} s = {rate:,.0f} rows/s")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300,000 samples instead of 5 million")
    parser.add_argument("--samples", type=int, default=None, help="override the number of samples")
    args = parser.parse_args()
    samples = args.samples or (300_000 if args.quick else 5_000_000)
    samples -= samples % (CELLS * SIGNALS_PER_CELL)
    server = get_settings().database_url
    with tempfile.TemporaryDirectory(prefix="dfbench-ingest-") as tmp:
        workdir = Path(tmp)
        # The ceiling is measured before and after the ingest runs and averaged, so a machine whose speed drifts
        # during the run (a shared virtual machine does) skews the ratio less.
        ticks = samples // (CELLS * SIGNALS_PER_CELL)
        lanes = IngestOptions().writers
        assert lanes == PROCESSES, "the --processes run must use as many connections as the ceiling"

        def ceiling() -> float:
            rate = ingest_typed.copy_binary_parallel(
                server,
                cells=CELLS,
                signals_per_cell=SIGNALS_PER_CELL,
                ticks=ticks,
                start_us=now_us() - 3_600_000_000,
                step_us=STEP_US,
                connections=lanes,
                batch_rows=IngestOptions().batch_samples,
            )
            log(f"  binary COPY over {lanes} connections: {rate:,.0f} rows/s")
            return rate

        copies = [run_copy(server, samples, workdir)]
        ceilings = [ceiling()]
        config = "max_queued_messages 0\nmax_inflight_messages 0\n"
        with MosquittoBroker(data_dir=workdir / "mq", extra_config=config, persistence=False) as broker:
            log(f"ingest benchmark: {samples:,} samples, broker {broker.url}")
            rate_1, db_1 = run_ingest(server, broker.url, samples, 1, lanes)
            try:
                size, ts = bytes_per_sample(db_1)
                compressed = compressed_bytes_per_sample(db_1)
            finally:
                drop_database(db_1)
            rate_mixed, db_mixed = run_ingest(server, broker.url, samples, 1, lanes, mixed=True)
            try:
                with psycopg.connect(db_mixed) as conn:
                    mixed_bytes, mixed_rows = ingest_typed.typed_size(conn)
                size_mixed = mixed_bytes / mixed_rows
            finally:
                drop_database(db_mixed)
            rates: dict[tuple[int, int], float] = {(1, lanes): rate_1}
            # Two workers with the default lanes, then one and two workers with one lane each: on a small machine
            # one worker may already keep every core busy, and the single-lane pair shows what a second worker
            # adds when the worker, not the machine, is the limit.
            for workers, writers in ((2, lanes), (1, 1), (2, 1)):
                rate, db = run_ingest(server, broker.url, samples, workers, writers)
                drop_database(db)
                rates[(workers, writers)] = rate
            # One service of PROCESSES worker processes with one lane each (``ingest run --processes``): as many
            # database connections as the default worker's lanes, so the same ceiling applies.
            rate_p, db = run_ingest(server, broker.url, samples, 1, 1, processes=PROCESSES)
            drop_database(db)
            rate_mixed_p, db = run_ingest(server, broker.url, samples, 1, 1, mixed=True, processes=PROCESSES)
            drop_database(db)
            # Messages as full as the gateway's default batch (GatewayConfig.batch_max_samples, 500: what a gateway
            # sends while it catches up on a backlog), drained by one worker with its default lanes.
            rate_full, db = run_ingest(server, broker.url, samples, 1, lanes, ticks_per_message=FULL_TICKS)
            drop_database(db)
        copies.append(run_copy(server, samples, workdir))
        ceilings.append(ceiling())
    log("storage of the realistic signal mix (benchmarks.signal_mix)")
    mix = storage.realistic_mix(server, quick=args.quick)
    copy_rate = sum(copies) / len(copies)
    ceiling_rate = sum(ceilings) / len(ceilings)
    rate_2 = rates[(2, lanes)]
    result = {
        "samples": samples,
        "samples_per_s": round(rate_1),
        "samples_per_s_2_workers": round(rate_2),
        "samples_per_s_1_lane": round(rates[(1, 1)]),
        "samples_per_s_2_workers_1_lane": round(rates[(2, 1)]),
        "samples_per_s_mixed_types": round(rate_mixed),
        "samples_per_s_processes_2": round(rate_p),
        "samples_per_s_mixed_types_processes_2": round(rate_mixed_p),
        "samples_per_s_500_per_message": round(rate_full),
        "copy_samples_per_s": round(copy_rate),
        "copy_samples_per_s_each": [round(c) for c in copies],
        "copy_binary_parallel_samples_per_s": round(ceiling_rate),
        "copy_binary_parallel_samples_per_s_each": [round(c) for c in ceilings],
        "ratio_vs_copy": round(rate_1 / ceiling_rate, 3),
        "ratio_mixed_vs_copy": round(rate_mixed / ceiling_rate, 3),
        "ratio_2_workers_vs_copy": round(rate_2 / ceiling_rate, 3),
        "ratio_processes_2_vs_copy": round(rate_p / ceiling_rate, 3),
        "ratio_mixed_processes_2_vs_copy": round(rate_mixed_p / ceiling_rate, 3),
        "ratio_500_per_message_vs_copy": round(rate_full / ceiling_rate, 3),
        "ratio_vs_psql_copy": round(rate_1 / copy_rate, 3),
        "bytes_per_sample": round(size, 1),
        "bytes_per_sample_mixed_types": round(size_mixed, 1),
        # Compression depends on the data: the headline figure is the realistic mix (quantised analogue values,
        # counters, states, meters, setpoints); the benchmark's own synthetic rows are reported beside it.
        "bytes_per_sample_compressed": None if mix["compressed"] is None else round(float(mix["compressed"]), 2),
        "bytes_per_sample_compressed_benchmark_rows": None if compressed is None else round(compressed, 1),
        "bytes_per_sample_realistic_mix": round(float(mix["raw"] or 0), 1),
        "writers_per_worker": lanes,
        "cpu_count": os.cpu_count(),
        "timescaledb": ts,
    }
    table = [
        (f"one worker, {lanes} lanes", f"{rate_1:,.0f} samples/s"),
        (f"two workers, {lanes} lanes", f"{rate_2:,.0f} samples/s"),
        ("one worker, 1 lane", f"{rates[(1, 1)]:,.0f} samples/s"),
        ("two workers, 1 lane", f"{rates[(2, 1)]:,.0f} samples/s"),
        ("one worker, mixed types", f"{rate_mixed:,.0f} samples/s"),
        (f"{PROCESSES} processes, 1 lane", f"{rate_p:,.0f} samples/s"),
        (f"{PROCESSES} processes, mixed", f"{rate_mixed_p:,.0f} samples/s"),
        (f"{FULL_TICKS * SIGNALS_PER_CELL} per message", f"{rate_full:,.0f} samples/s"),
        ("psql \\copy", f"{copy_rate:,.0f} rows/s"),
        (f"binary COPY x{lanes} (ceiling)", f"{ceiling_rate:,.0f} rows/s"),
        ("bytes per sample", f"{size:.1f}"),
    ]
    log("\n".join(f"{k:>24}: {v:>20}" for k, v in table))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
