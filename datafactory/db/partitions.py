"""Time partitions of the sample tables on plain PostgreSQL (TimescaleDB manages chunks itself).

``samples`` (float64) and ``samples_typed`` (int64, uint64, bool, string; migration 0600) are partitioned the same
way: daily partitions named ``samples_pYYYYMMDD`` and ``samples_typed_pYYYYMMDD``, and a DEFAULT partition each
that catches anything outside the created range so an insert never fails for want of a partition. Every call
here treats both tables alike (a database migrated before 0600 has only ``samples``), so a day is either ready
in both or in neither, and retention is a partition drop in both.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import sql

TABLES = ("samples", "samples_typed")


def partition_name(day: date, table: str = "samples") -> str:
    return f"{table}_p{day:%Y%m%d}"


def partitioned_tables(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_partitioned_table pt JOIN pg_class c ON c.oid = pt.partrelid"
        " WHERE c.relname = ANY(%s) AND c.relnamespace = current_schema()::regnamespace",
        (list(TABLES),),
    ).fetchall()
    return [t for t in TABLES if (t,) in rows]


def is_partitioned(conn: psycopg.Connection) -> bool:
    return "samples" in partitioned_tables(conn)


def existing_partitions(conn: psycopg.Connection) -> list[str]:
    """Names of the partitions of both sample tables (each table's own prefix tells them apart)."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = ANY(%s)"
        " AND p.relnamespace = current_schema()::regnamespace ORDER BY 1",
        (list(TABLES),),
    ).fetchall()
    return [r[0] for r in rows]


def day_ready(existing: set[str], tables: list[str] | tuple[str, ...], day: date) -> bool:
    return all(partition_name(day, table) in existing for table in tables)


def ensure_partitions(conn: psycopg.Connection, start: date, end: date) -> list[str]:
    """Create daily partitions for [start, end] in every partitioned sample table, moving matching rows out of
    the default partition."""
    have = set(existing_partitions(conn))
    created = []
    for table in partitioned_tables(conn):
        day = start
        while day <= end:
            name = partition_name(day, table)
            if name not in have:
                _create(conn, table, name, day)
                created.append(name)
            day += timedelta(days=1)
    return created


def _create(conn: psycopg.Connection, table: str, name: str, day: date) -> None:
    lo = datetime(day.year, day.month, day.day, tzinfo=UTC)
    hi = lo + timedelta(days=1)
    default = sql.Identifier(f"{table}_default")
    with conn.transaction():
        # Rows already in the default partition for this day would block the new partition: move them.
        conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(default))
        conn.execute(
            sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)").format(
                sql.Identifier(name), sql.Identifier(table)
            )
        )
        conn.execute(
            sql.SQL(
                "WITH moved AS (DELETE FROM {} WHERE time >= %s AND time < %s RETURNING *)"
                " INSERT INTO {} SELECT * FROM moved"
            ).format(default, sql.Identifier(name)),
            (lo, hi),
        )
        conn.execute(
            sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                sql.Identifier(table), sql.Identifier(name), sql.Literal(lo), sql.Literal(hi)
            )
        )


def drop_partitions_before(conn: psycopg.Connection, cutoff: date) -> list[str]:
    """Drop whole daily partitions that end on or before ``cutoff`` (retention), in both sample tables."""
    dropped = []
    for name in existing_partitions(conn):
        for table in TABLES:
            suffix = name.removeprefix(f"{table}_p")
            if suffix != name and suffix.isdigit() and len(suffix) == 8:
                if date.fromisoformat(suffix) < cutoff:
                    conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
                    dropped.append(name)
                break
    return dropped
