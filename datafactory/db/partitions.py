"""Time partitions of ``samples`` on plain PostgreSQL (TimescaleDB manages chunks itself).

Partitions are daily, named ``samples_pYYYYMMDD``; a DEFAULT partition catches anything outside the created
range so an insert never fails for want of a partition. Retention is then a partition drop.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import sql


def partition_name(day: date) -> str:
    return f"samples_p{day:%Y%m%d}"


def is_partitioned(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pg_partitioned_table pt JOIN pg_class c ON c.oid = pt.partrelid"
        " WHERE c.relname = 'samples' AND c.relnamespace = current_schema()::regnamespace"
    ).fetchone()
    return row is not None


def existing_partitions(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'samples'"
        " AND p.relnamespace = current_schema()::regnamespace ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def ensure_partitions(conn: psycopg.Connection, start: date, end: date) -> list[str]:
    """Create daily partitions for [start, end], moving matching rows out of the default partition."""
    have = set(existing_partitions(conn))
    created = []
    day = start
    while day <= end:
        name = partition_name(day)
        if name not in have:
            lo = datetime(day.year, day.month, day.day, tzinfo=UTC)
            hi = lo + timedelta(days=1)
            with conn.transaction():
                # Rows already in the default partition for this day would block the new partition: move them.
                conn.execute("LOCK TABLE samples_default IN ACCESS EXCLUSIVE MODE")
                conn.execute(sql.SQL("CREATE TABLE {} (LIKE samples INCLUDING DEFAULTS)").format(sql.Identifier(name)))
                conn.execute(
                    sql.SQL(
                        "WITH moved AS (DELETE FROM samples_default WHERE time >= %s AND time < %s RETURNING *)"
                        " INSERT INTO {} SELECT * FROM moved"
                    ).format(sql.Identifier(name)),
                    (lo, hi),
                )
                conn.execute(
                    sql.SQL("ALTER TABLE samples ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                        sql.Identifier(name), sql.Literal(lo), sql.Literal(hi)
                    )
                )
            created.append(name)
        day += timedelta(days=1)
    return created


def drop_partitions_before(conn: psycopg.Connection, cutoff: date) -> list[str]:
    """Drop whole daily partitions that end on or before ``cutoff`` (retention)."""
    dropped = []
    for name in existing_partitions(conn):
        if not name.startswith("samples_p"):
            continue
        day = date.fromisoformat(name.removeprefix("samples_p"))
        if day < cutoff:
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
            dropped.append(name)
    return dropped
