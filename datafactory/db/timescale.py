"""Everything TimescaleDB-specific lives here, and only here.

The schema works on plain PostgreSQL ≥ 15. When the ``timescaledb`` extension is available, the samples table
becomes a hypertable with native compression (segment by signal, order by time) and an optional retention
policy. Queries elsewhere use ``date_bin`` (core PostgreSQL), which works on both.
"""

from __future__ import annotations

import psycopg


def available(conn: psycopg.Connection) -> bool:
    """Whether the TimescaleDB extension can be created (or already exists) in this server."""
    row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    return row is not None


def installed(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    return row is not None


def enable(conn: psycopg.Connection) -> bool:
    """Create the extension when available. Returns whether TimescaleDB is now in use."""
    if installed(conn):
        return True
    if not available(conn):
        return False
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg.errors.FeatureNotSupported:
        # Listed but not preloaded (shared_preload_libraries); fall back to plain PostgreSQL.
        return False
    return True


def create_samples_hypertable(conn: psycopg.Connection, chunk_interval: str) -> None:
    conn.execute(
        "SELECT create_hypertable('samples', 'time', chunk_time_interval => %s::interval, if_not_exists => true)",
        (chunk_interval,),
    )


def apply_policies(
    conn: psycopg.Connection, *, compress_after: str, retention_days: int | None, chunk_interval: str
) -> None:
    """(Re)apply compression and retention; idempotent, so ``db migrate`` can run on every start."""
    conn.execute("SELECT set_chunk_time_interval('samples', %s::interval)", (chunk_interval,))
    conn.execute(
        "ALTER TABLE samples SET (timescaledb.compress, timescaledb.compress_segmentby = 'signal_id',"
        " timescaledb.compress_orderby = 'time')"
    )
    conn.execute("SELECT remove_compression_policy('samples', if_exists => true)")
    conn.execute("SELECT add_compression_policy('samples', %s::interval)", (compress_after,))
    conn.execute("SELECT remove_retention_policy('samples', if_exists => true)")
    if retention_days is not None:
        conn.execute("SELECT add_retention_policy('samples', make_interval(days => %s))", (retention_days,))


def compress_all(conn: psycopg.Connection) -> int:
    """Compress every uncompressed chunk now (benchmarks and tests). Returns the number compressed."""
    rows = conn.execute("SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('samples') c").fetchall()
    return len(rows)
