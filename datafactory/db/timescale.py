"""Everything TimescaleDB-specific lives here, and only here.

The schema works on plain PostgreSQL ≥ 15. When the ``timescaledb`` extension is available *and preloaded*, the
samples table becomes a hypertable with native compression (segment by signal, order by time) and an optional
retention policy, and the dashboards' hourly roll-up is a continuous aggregate. Queries elsewhere use
``date_bin`` (core PostgreSQL), which works on both.

A server can be in three states (``probe``): no extension; extension files installed but the library not in
``shared_preload_libraries`` (the state right after installing the Debian/Ubuntu package, before
``timescaledb-tune`` and a restart) — creating the extension then ends the session with FATAL, so we never try
and fall back to plain PostgreSQL with a warning; and preloaded. Policies are read back and changed only when
they differ from the settings, so ``db migrate`` on every start takes no lock on ``samples`` when nothing changed.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

import psycopg
from psycopg import sql

from datafactory.db.connect import connect

log = logging.getLogger(__name__)

PRELOAD_HINT = (
    "TimescaleDB is installed on this server but not preloaded: add 'timescaledb' to shared_preload_libraries in "
    "postgresql.conf (timescaledb-tune does this) and restart PostgreSQL; continuing on plain PostgreSQL "
    "(samples partitioned by day)"
)
# Supported TimescaleDB releases (docs/operators.md); compose.yaml pins an image inside this range.
SUPPORTED_VERSIONS = ("2.17", "2.28")
SEGMENT_BY = "signal_id"
ORDER_BY = "time"
# Rows per compressed batch. TimescaleDB's default, 1,000, leaves the value column of a batch of the realistic mix
# (benchmarks/storage) just over one 1,996-byte TOAST chunk, so most batches take a full chunk plus a small one
# and a third of the TOAST pages is chunk headers and gaps: 3.2 bytes per sample. 4,000 rows amortise that (about
# 2.6) and still decompress in well under a millisecond per batch for a dashboard's range query. The setting is
# read by the session that compresses, so it is set on the database: the compression policy's background job
# and every later session see it.
BATCH_ROWS = 4000
BATCH_SETTING = "timescaledb.compression_batch_size_limit"


class ServerState(enum.Enum):
    ABSENT = "absent"  # no extension files on the server
    NOT_PRELOADED = "not_preloaded"  # files installed, library not in shared_preload_libraries
    READY = "ready"  # preloaded: CREATE EXTENSION works


def probe(conn: psycopg.Connection) -> ServerState:
    if conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone() is None:
        return ServerState.ABSENT
    row = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
    libraries = {part.strip().strip('"') for part in str(row[0] if row else "").split(",")}
    return ServerState.READY if "timescaledb" in libraries else ServerState.NOT_PRELOADED


def installed(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    return row is not None


def enable(url: str) -> bool:
    """Create the extension in the database at ``url`` when the server can load it; whether it is now in use.

    Runs on a connection of its own: should the server still refuse (it ends the session with FATAL when the
    library is not preloaded), the caller's connection is untouched and migrate goes on on plain PostgreSQL.
    """
    with connect(url, autocommit=True, application_name="datafactory-migrate") as conn:
        if installed(conn):
            return True
        state = probe(conn)
        if state is ServerState.ABSENT:
            return False
        if state is ServerState.NOT_PRELOADED:
            log.warning(PRELOAD_HINT)
            return False
    try:
        with connect(url, autocommit=True, application_name="datafactory-migrate") as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except (psycopg.Error, OSError) as err:
        # A preload configured but broken (wrong version, library missing) must not stop migrate either.
        log.warning(
            "TimescaleDB could not be enabled (%s); continuing on plain PostgreSQL",
            str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__,
        )
        return False
    return True


def is_hypertable(conn: psycopg.Connection, table: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_schema = current_schema()"
        " AND hypertable_name = %s",
        (table,),
    ).fetchone()
    return row is not None


def create_samples_hypertable(conn: psycopg.Connection, chunk_interval: str, table: str = "samples") -> None:
    conn.execute(
        "SELECT create_hypertable(%s::regclass, 'time', chunk_time_interval => %s::interval, if_not_exists => true)",
        (table, chunk_interval),
    )


def create_typed_hypertable(conn: psycopg.Connection, chunk_interval: str) -> None:
    """``samples_typed`` (migration 0600) as a hypertable like ``samples``; ``apply_policies`` then gives it the
    same compression (segment by signal, order by time) and retention."""
    create_samples_hypertable(conn, chunk_interval, "samples_typed")


@dataclass(frozen=True)
class PolicyChange:
    what: str
    old: str | None
    new: str | None


def _same_interval(conn: psycopg.Connection, a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    row = conn.execute("SELECT %s::interval = %s::interval", (a, b)).fetchone()
    return bool(row and row[0])


def _job_setting(conn: psycopg.Connection, table: str, proc: str, key: str) -> tuple[int, str] | None:
    row = conn.execute(
        "SELECT job_id, config->>%s FROM timescaledb_information.jobs"
        " WHERE hypertable_schema = current_schema() AND hypertable_name = %s AND proc_name = %s",
        (key, table, proc),
    ).fetchone()
    return (int(row[0]), str(row[1])) if row else None


def _compression_settings(conn: psycopg.Connection, table: str) -> tuple[str, str] | None:
    row = conn.execute(
        "SELECT segmentby, orderby FROM timescaledb_information.hypertable_compression_settings"
        " WHERE hypertable = %s::regclass",
        (table,),
    ).fetchone()
    if row is None:
        return None

    def norm(text: str | None) -> str:
        return (text or "").replace('"', "").replace(" ", "")

    return norm(row[0]), norm(row[1])


def apply_policies(
    conn: psycopg.Connection, *, compress_after: str, retention_days: int | None, chunk_interval: str
) -> list[PolicyChange]:
    """Bring chunk interval, compression and retention of ``samples`` and ``samples_typed`` (when it is a
    hypertable: migration 0600 makes it one) to the settings; change only what differs."""
    changes: list[PolicyChange] = []
    for table in ("samples", "samples_typed"):
        if is_hypertable(conn, table):
            changes += _apply_table_policies(
                conn, table, compress_after=compress_after, retention_days=retention_days, chunk_interval=chunk_interval
            )
    batch = _apply_batch_rows(conn)
    if batch is not None:
        changes.append(batch)
    for change in changes:
        log.info("TimescaleDB %s: %s → %s", change.what, change.old, change.new)
    return changes


def _apply_table_policies(
    conn: psycopg.Connection, table: str, *, compress_after: str, retention_days: int | None, chunk_interval: str
) -> list[PolicyChange]:
    """Every ALTER here takes a strong lock on the table, so a migrate with nothing to change must not issue one
    (compose runs migrate on every start): settings are read back first. A policy is altered in place
    (``alter_job``), keeping its job id and run history.
    """
    changes: list[PolicyChange] = []
    ident = sql.Identifier(table)
    row = conn.execute(
        "SELECT time_interval::text FROM timescaledb_information.dimensions"
        " WHERE hypertable_schema = current_schema() AND hypertable_name = %s AND column_name = 'time'",
        (table,),
    ).fetchone()
    current_chunk = str(row[0]) if row and row[0] is not None else None
    if not _same_interval(conn, current_chunk, chunk_interval):
        conn.execute("SELECT set_chunk_time_interval(%s::regclass, %s::interval)", (table, chunk_interval))
        changes.append(PolicyChange(f"{table} chunk_time_interval", current_chunk, chunk_interval))

    settings = _compression_settings(conn, table)
    if settings != (SEGMENT_BY, ORDER_BY):
        conn.execute(
            sql.SQL(
                "ALTER TABLE {} SET (timescaledb.compress, timescaledb.compress_segmentby = 'signal_id',"
                " timescaledb.compress_orderby = 'time')"
            ).format(ident)
        )
        changes.append(
            PolicyChange(f"{table} compression", ",".join(settings) if settings else None, f"{SEGMENT_BY},{ORDER_BY}")
        )

    job = _job_setting(conn, table, "policy_compression", "compress_after")
    if job is None:
        conn.execute("SELECT add_compression_policy(%s::regclass, %s::interval)", (table, compress_after))
        changes.append(PolicyChange(f"{table} compress_after", None, compress_after))
    elif not _same_interval(conn, job[1], compress_after):
        conn.execute(
            "SELECT alter_job(job_id, config => jsonb_set(config, '{compress_after}', to_jsonb(%s::text)))"
            " FROM timescaledb_information.jobs WHERE job_id = %s",
            (compress_after, job[0]),
        )
        changes.append(PolicyChange(f"{table} compress_after", job[1], compress_after))

    wanted = f"{retention_days} days" if retention_days is not None else None
    retention = _job_setting(conn, table, "policy_retention", "drop_after")
    if retention is None and wanted is not None:
        conn.execute("SELECT add_retention_policy(%s::regclass, make_interval(days => %s))", (table, retention_days))
        changes.append(PolicyChange(f"{table} retention", None, wanted))
    elif retention is not None and wanted is None:
        conn.execute("SELECT remove_retention_policy(%s::regclass, if_exists => true)", (table,))
        changes.append(PolicyChange(f"{table} retention", retention[1], None))
    elif retention is not None and not _same_interval(conn, retention[1], wanted):
        conn.execute(
            "SELECT alter_job(job_id, config => jsonb_set(config, '{drop_after}', to_jsonb(%s::text)))"
            " FROM timescaledb_information.jobs WHERE job_id = %s",
            (wanted, retention[0]),
        )
        changes.append(PolicyChange(f"{table} retention", retention[1], wanted))
    return changes


def database_setting(conn: psycopg.Connection, name: str) -> str | None:
    """The value ``ALTER DATABASE … SET name`` gave the current database (None when it is not set there)."""
    row = conn.execute(
        "SELECT split_part(cfg, '=', 2) FROM pg_db_role_setting d, unnest(d.setconfig) AS cfg"
        " WHERE d.setrole = 0 AND d.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND split_part(cfg, '=', 1) = %s",
        (name,),
    ).fetchone()
    return str(row[0]) if row else None


def _apply_batch_rows(conn: psycopg.Connection) -> PolicyChange | None:
    current = database_setting(conn, BATCH_SETTING)
    if current == str(BATCH_ROWS):
        return None
    row = conn.execute("SELECT current_database()").fetchone()
    assert row is not None
    try:
        with conn.transaction():
            conn.execute(
                sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                    sql.Identifier(str(row[0])), sql.SQL(BATCH_SETTING), sql.Literal(BATCH_ROWS)
                )
            )
    except psycopg.errors.InsufficientPrivilege:
        # Only the database's owner may set it; compression still works, with TimescaleDB's smaller batches.
        log.warning(
            "cannot set %s on database %s (not its owner): compressed batches keep TimescaleDB's default size;"
            " run db migrate as the database owner to apply it",
            BATCH_SETTING,
            row[0],
        )
        return None
    return PolicyChange("compressed batch rows", current, str(BATCH_ROWS))


HOURLY_ROLLUP_POLICY = {"end_offset": "1 hour", "schedule_interval": "15 minutes"}


def create_hourly_rollup(conn: psycopg.Connection) -> None:
    """Replace the ``samples_hourly`` table (migration 0500) by a continuous aggregate with the same columns.

    ``materialized_only = false``: the newest hour, not yet materialised, is computed from raw samples at query
    time, so a panel is never behind. The policy's window starts at the beginning of the data (start_offset NULL):
    a refresh only recomputes buckets that TimescaleDB's invalidation log marks as changed, so late samples of any
    age reach the roll-up without re-reading history. ``df_rollup_samples_hourly`` (called after analytics runs)
    becomes a no-op here: a refresh cannot run inside the caller's transaction, and the policy does the work.
    """
    conn.execute("DROP TABLE IF EXISTS samples_hourly")
    conn.execute(
        """
        CREATE MATERIALIZED VIEW samples_hourly
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT signal_id, time_bucket(INTERVAL '1 hour', time) AS time,
               avg(value) AS avg, min(value) AS min, max(value) AS max, count(*)::integer AS n
        FROM samples
        WHERE value IS NOT NULL
        GROUP BY signal_id, time_bucket(INTERVAL '1 hour', time)
        WITH NO DATA
        """
    )
    conn.execute(
        "SELECT add_continuous_aggregate_policy('samples_hourly', start_offset => NULL,"
        " end_offset => %s::interval, schedule_interval => %s::interval)",
        (HOURLY_ROLLUP_POLICY["end_offset"], HOURLY_ROLLUP_POLICY["schedule_interval"]),
    )
    conn.execute(
        """
        CREATE OR REPLACE FUNCTION df_rollup_samples_hourly(t_from timestamptz, t_to timestamptz) RETURNS bigint
        LANGUAGE sql AS $$ SELECT 0::bigint $$
        """
    )


def continuous_aggregates(conn: psycopg.Connection) -> set[str]:
    """Names of the continuous aggregates in the current schema (empty without TimescaleDB)."""
    if not installed(conn):
        return set()
    rows = conn.execute(
        "SELECT view_name FROM timescaledb_information.continuous_aggregates WHERE view_schema = current_schema()"
    ).fetchall()
    return {str(r[0]) for r in rows}


def refresh_hourly_rollup_now(conn: psycopg.Connection, *, as_the_policy: bool = False) -> None:
    """Materialise pending buckets now (tests and benchmarks; ``conn`` must be in autocommit mode): every bucket, or
    with ``as_the_policy`` only those the refresh policy would have materialised by now (older than its
    ``end_offset``), leaving the newest hour to real-time aggregation as in a running deployment."""
    if as_the_policy:
        conn.execute("CALL refresh_continuous_aggregate('samples_hourly', NULL, now() - %s::interval)",
                     (HOURLY_ROLLUP_POLICY["end_offset"],))
    else:
        conn.execute("CALL refresh_continuous_aggregate('samples_hourly', NULL, NULL)")


def compress_all(conn: psycopg.Connection, *, batch_rows: int | None = None) -> int:
    """Compress every uncompressed chunk of ``samples`` and ``samples_typed`` now (benchmarks and tests). Returns
    the number compressed.

    Batches of ``batch_rows`` (benchmarks compare sizes), by default the database's setting (``BATCH_ROWS``, set by
    migrate), also on a connection opened before migrate set it.
    """
    batch = batch_rows if batch_rows is not None else database_setting(conn, BATCH_SETTING)
    if batch is not None:
        conn.execute(sql.SQL("SET {} = {}").format(sql.SQL(BATCH_SETTING), sql.Literal(int(batch))))
    n = 0
    for table in ("samples", "samples_typed"):
        if is_hypertable(conn, table):
            n += len(
                conn.execute(
                    "SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks(%s::regclass) c", (table,)
                ).fetchall()
            )
    return n
