"""The narrow samples table, keyed by (signal_id, time).

On TimescaleDB: a hypertable (compression and retention applied by ``db.timescale.apply_policies``).
On plain PostgreSQL: range-partitioned by day with a default partition (``db.partitions``).
``value`` is NULL only for markers whose quality is bad (e.g. communication lost).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from datafactory.db import partitions, timescale
from datafactory.db.migrate import MigrationContext

COLUMNS = """
    time      timestamptz NOT NULL,
    signal_id integer NOT NULL,
    value     double precision,
    quality   integer NOT NULL DEFAULT 0,
    PRIMARY KEY (signal_id, time)
"""


def apply(conn: psycopg.Connection, ctx: MigrationContext) -> None:
    if ctx.timescale:
        conn.execute(f"CREATE TABLE samples ({COLUMNS})")
        timescale.create_samples_hypertable(conn, ctx.chunk_interval)
    else:
        conn.execute(f"CREATE TABLE samples ({COLUMNS}) PARTITION BY RANGE (time)")
        conn.execute("CREATE TABLE samples_default PARTITION OF samples DEFAULT")
        today = datetime.now(UTC).date()
        partitions.ensure_partitions(conn, today - timedelta(days=1), today + timedelta(days=7))
