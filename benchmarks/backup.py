"""Backup and restore benchmark: N samples (10 million; --quick: 1 million) in a fresh database, then
``datafactory backup`` (pg_dump -Fc on an exported snapshot + same-snapshot manifest) and ``datafactory restore``
into another fresh database (pg_restore + recomputed manifest, verified). As the machine's own reference, a bare
``pg_dump -Fc`` of the same database is timed too.

    python -m benchmarks.backup [--quick] [--samples N] [--jobs 2]

Last stdout line: JSON with samples, backup_s, restore_s, verified, cpu_count, timescaledb, and more.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from datafactory.db import registry
from datafactory.db.connect import drop_database, with_database
from datafactory.db.migrate import migrate
from datafactory.db.samples import copy_rows
from datafactory.settings import get_settings
from ops.backup import RestoreError, backup, restore
from ops.pg_tools import child_connection, find_tool

SIGNALS = 1000


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def fill(url: str, samples: int) -> float:
    started = time.monotonic()
    per_signal = max(1, samples // SIGNALS)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=per_signal)
    times = [t0 + timedelta(seconds=i) for i in range(per_signal)]
    with psycopg.connect(url) as conn:
        plant = registry.upsert_plant(conn, "bench", "site-1")
        cell = registry.upsert_cell(conn, plant, "area", "line", "cell")
        ids = [registry.upsert_signal(conn, plant, cell, f"s{i}") for i in range(SIGNALS)]
        conn.commit()
        written = 0
        for n, sig in enumerate(ids):
            take = min(per_signal, samples - written)
            if take <= 0:
                break
            value = float(n)
            written += copy_rows(conn, ((sig, t, value + i * 0.25, 0) for i, t in enumerate(times[:take])))
            if n % 100 == 99:
                conn.commit()
                log(f"  loaded {written:,} samples")
        conn.commit()
    return time.monotonic() - started


def bare_pg_dump(url: str, out: Path) -> float:
    with psycopg.connect(url) as conn:
        pg_dump = find_tool("pg_dump", conn.info.server_version // 10000)
    conninfo, env = child_connection(url)
    started = time.monotonic()
    subprocess.run([str(pg_dump), "-Fc", "--no-password", f"--file={out}", f"--dbname={conninfo}"], env=env,
                   check=True)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 million samples instead of 10 million")
    parser.add_argument("--samples", type=int, default=None, help="override the number of samples")
    parser.add_argument("--jobs", type=int, default=2, help="pg_restore parallel jobs")
    args = parser.parse_args()
    samples = args.samples or (1_000_000 if args.quick else 10_000_000)
    base = get_settings().database_url
    tag = uuid.uuid4().hex[:8]
    source, target = with_database(base, f"df_bench_backup_{tag}"), with_database(base, f"df_bench_restore_{tag}")
    try:
        migrated = migrate(source)
        log(f"filling {samples:,} samples into {SIGNALS} signals …")
        load_s = fill(source, samples)
        with tempfile.TemporaryDirectory(prefix="df-bench-backup-") as tmp:
            bare_s = bare_pg_dump(source, Path(tmp) / "bare.dump")
            (Path(tmp) / "bare.dump").unlink()
            log(f"bare pg_dump -Fc: {bare_s:.1f} s")
            result = backup(source, Path(tmp) / "df.dump", actor="benchmark")
            log(f"backup: {result.seconds:.1f} s, {result.bytes / 1e6:.1f} MB")
            drop_database(source)
            try:
                restored = restore(Path(tmp) / "df.dump", target, actor="benchmark", jobs=args.jobs)
                verified, restore_s = not restored.problems, restored.seconds
            except RestoreError as err:
                log(f"restore NOT verified: {err}")
                verified, restore_s = False, float("nan")
            log(f"restore + verify: {restore_s:.1f} s, verified={verified}")
            dump_bytes = result.bytes
    finally:
        drop_database(source)
        drop_database(target)
    figures = {
        "samples": samples,
        "backup_s": round(result.seconds, 2),
        "restore_s": round(restore_s, 2),
        "verified": verified,
        "bare_pg_dump_s": round(bare_s, 2),
        "ratio_vs_pg_dump": round(result.seconds / bare_s, 3) if bare_s else None,
        "dump_bytes": dump_bytes,
        "bytes_per_sample": round(dump_bytes / samples, 2),
        "load_s": round(load_s, 2),
        "cpu_count": os.cpu_count(),
        "timescaledb": migrated.timescale,
    }
    print(f"{'figure':<20} value")
    for key, value in figures.items():
        print(f"{key:<20} {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
