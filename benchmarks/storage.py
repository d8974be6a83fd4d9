"""Storage benchmark: bytes per sample of the realistic signal mix (``signal_mix``), raw and compressed.

On TimescaleDB it compares compression layouts on the same rows, each in a fresh database: the shipped one
(segment by signal_id, order by time, 1-day chunks, batches of ``timescale.BATCH_ROWS`` rows) against
TimescaleDB's default batches of 1,000 rows, against 7-day chunks and against no segmenting (order by
signal_id, time). The reference is the raw (uncompressed) size of the same rows. On plain PostgreSQL only the
raw size is measured (``bytes_per_sample_compressed`` is null).

    python -m benchmarks.storage [--quick] [--signals N] [--hours H]

Full size: 200 signals × 24 h (about 7.6 million samples); --quick: 100 signals × 2 h (about 0.3 million).
Last stdout line: JSON with samples, signals, hours, bytes_per_sample, bytes_per_sample_compressed, layouts,
cpu_count, timescaledb.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg

from benchmarks import signal_mix
from datafactory.db import registry, timescale
from datafactory.db.connect import drop_database, with_database
from datafactory.db.migrate import migrate
from datafactory.db.samples import copy_rows
from datafactory.settings import get_settings

# name → (chunk interval, segment by, order by, rows per batch); the first is what db migrate ships.
LAYOUTS = {
    "signal_time_1d": ("1 day", "signal_id", "time", timescale.BATCH_ROWS),
    "signal_time_1d_batch1000": ("1 day", "signal_id", "time", 1000),
    "signal_time_7d": ("7 days", "signal_id", "time", timescale.BATCH_ROWS),
    "unsegmented_1d": ("1 day", "", "signal_id, time", timescale.BATCH_ROWS),
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _server() -> str:
    url = get_settings().database_url
    return with_database(url, "postgres")


def _fill(url: str, signals: int, hours: int) -> int:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours + 24)
    with psycopg.connect(url) as conn:
        plant = registry.upsert_plant(conn, "bench-storage", "site-1")
        cell = registry.upsert_cell(conn, plant, "area", "line", "cell")
        ids = [registry.upsert_signal(conn, plant, cell, f"s{i}") for i in range(signals)]
        conn.commit()
        n = copy_rows(conn, signal_mix.rows(ids, start, hours * 3600))
        conn.commit()
    return n


def samples_size(conn: psycopg.Connection) -> tuple[float, int]:
    """Bytes on disk of ``samples`` (hypertable with its chunks, or every partition) and its row count."""
    if timescale.installed(conn):
        row = conn.execute("SELECT hypertable_size('samples'), (SELECT count(*) FROM samples)").fetchone()
    else:
        row = conn.execute(
            "SELECT sum(pg_total_relation_size(relid)), (SELECT count(*) FROM samples)"
            " FROM pg_partition_tree('samples')"
        ).fetchone()
    assert row is not None
    return float(row[0]), int(row[1])


def _measure(server: str, signals: int, hours: int, layout: str | None) -> dict[str, float | int | None]:
    url = with_database(server, f"dfbench_storage_{uuid.uuid4().hex[:6]}")
    try:
        settings = get_settings().model_copy(update={"timescale_chunk_interval": LAYOUTS[layout][0]}) if layout \
            else get_settings()
        migrate(url, settings)
        started = time.monotonic()
        samples = _fill(url, signals, hours)
        log(f"  {samples:,} samples loaded in {time.monotonic() - started:.1f} s")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE samples")
            raw, rows = samples_size(conn)
            compressed = None
            if layout is not None:
                _chunk, segment, order, batch = LAYOUTS[layout]
                if (segment, order) != (timescale.SEGMENT_BY, timescale.ORDER_BY):
                    # Measurement only: the shipped layout is set by db migrate (timescale.apply_policies).
                    conn.execute(
                        "SELECT remove_compression_policy('samples', if_exists => true)"
                    )
                    conn.execute(
                        f"ALTER TABLE samples SET (timescaledb.compress, timescaledb.compress_segmentby = '{segment}',"
                        f" timescaledb.compress_orderby = '{order}')"
                    )
                timescale.compress_all(conn, batch_rows=batch)
                compressed, _ = samples_size(conn)
        return {"samples": rows, "raw": raw / rows, "compressed": None if compressed is None else compressed / rows}
    finally:
        drop_database(url)


def realistic_mix(server: str, *, quick: bool) -> dict[str, float | int | None]:
    """Raw and compressed bytes per sample of the realistic mix in the shipped layout (compressed: None without
    TimescaleDB). For other benchmarks' ``bytes_per_sample_compressed``."""
    with psycopg.connect(with_database(server, "postgres"), autocommit=True) as conn:
        on_ts = timescale.probe(conn) is timescale.ServerState.READY
    return _measure(server, 100 if quick else 200, 2 if quick else 24, "signal_time_1d" if on_ts else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 signals × 2 h instead of 200 × 24 h")
    parser.add_argument("--signals", type=int, default=None, help="signals in the mix (default 200; quick 100)")
    parser.add_argument("--hours", type=int, default=None, help="hours of data (default 24; quick 2)")
    args = parser.parse_args()
    signals = args.signals or (100 if args.quick else 200)
    hours = args.hours or (2 if args.quick else 24)
    server = _server()
    with psycopg.connect(server, autocommit=True) as conn:
        on_ts = timescale.probe(conn) is timescale.ServerState.READY
    layouts: dict[str, dict[str, float | int | None]] = {}
    if on_ts:
        for name in LAYOUTS:
            log(f"layout {name}: chunk {LAYOUTS[name][0]}, segment by {LAYOUTS[name][1] or '-'},"
                f" order by {LAYOUTS[name][2]}, {LAYOUTS[name][3]} rows per batch")
            layouts[name] = _measure(server, signals, hours, name)
            log(f"  raw {layouts[name]['raw']:.1f} B/sample, compressed {layouts[name]['compressed']:.2f} B/sample")
        shipped = layouts["signal_time_1d"]
    else:
        shipped = _measure(server, signals, hours, None)
        log(f"  plain PostgreSQL: {shipped['raw']:.1f} B/sample (no compression)")
    compressed = shipped["compressed"]
    result = {
        "samples": shipped["samples"],
        "signals": signals,
        "hours": hours,
        "bytes_per_sample": round(float(shipped["raw"] or 0), 1),
        "bytes_per_sample_compressed": None if compressed is None else round(float(compressed), 2),
        "compression_ratio": None if compressed is None else round(float(shipped["raw"] or 0) / float(compressed), 1),
        "layouts": {k: {"raw": round(float(v["raw"] or 0), 1),
                        "compressed": None if v["compressed"] is None else round(float(v["compressed"]), 2)}
                    for k, v in layouts.items()},
        "cpu_count": os.cpu_count(),
        "timescaledb": on_ts,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
