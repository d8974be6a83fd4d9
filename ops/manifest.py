"""What a backup must reproduce: per-table row counts and content checksums, sequence positions, the audit head.

The checksum of a table is order-independent — the sum over rows of a 64-bit hash of the row as text
(``hashtextextended``, PostgreSQL's stable hash-partitioning hash; three times faster than md5 here) — so it
needs no primary key, no ORDER BY and no sort of a 10-million-row table, and it is one parallel-capable
aggregate computed server-side. It guards against a lossy or altered restore, not against a forger: the dump
file itself is covered by a sha256 in the manifest. Row text depends on session settings (time zone, date and
float formats), which are pinned here for both sides. ``row_security = off`` makes the query fail rather than
silently skip rows a policy would hide: run backups as a superuser or a role with BYPASSRLS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from datafactory.db import audit

SESSION = (
    "SET TIME ZONE 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 1",
    "SET bytea_output = 'hex'",
    "SET row_security = off",
)


@dataclass
class Manifest:
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"rows": n, "checksum": "…"}
    sequences: dict[str, list[Any]] = field(default_factory=dict)  # name -> [last_value, is_called]
    roles: list[str] = field(default_factory=list)
    audit_head: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"tables": self.tables, "sequences": self.sequences, "roles": self.roles, "audit_head": self.audit_head}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Manifest:
        return cls(doc["tables"], doc.get("sequences", {}), doc.get("roles", []), doc.get("audit_head", {}))


def pin_session(conn: psycopg.Connection) -> None:
    for statement in SESSION:
        conn.execute(statement)


def user_tables(conn: psycopg.Connection) -> list[str]:
    """Top-level tables of the current schema (partitions are counted through their parent)."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def table_checksum(conn: psycopg.Connection, table: str) -> tuple[int, str]:
    row = conn.execute(
        sql.SQL("SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)::text FROM {} AS t").format(
            sql.Identifier(table)
        )
    ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def referenced_roles(conn: psycopg.Connection) -> list[str]:
    """Roles the dump's objects name (owners, grantees, policy targets): restore creates missing ones NOLOGIN."""
    rows = conn.execute(
        """
        WITH rels AS (SELECT c.* FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace)
        SELECT rolname FROM pg_roles WHERE NOT rolsuper AND rolname NOT LIKE 'pg\\_%' AND oid IN (
            SELECT relowner FROM rels
            UNION SELECT (aclexplode(relacl)).grantee FROM rels WHERE relacl IS NOT NULL
            UNION SELECT unnest(polroles) FROM pg_policy p JOIN rels ON rels.oid = p.polrelid
            UNION SELECT proowner FROM pg_proc WHERE pronamespace = current_schema()::regnamespace
            UNION SELECT member FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                  WHERE g.rolname = 'df_plant_reader')
        ORDER BY 1
        """
    ).fetchall()
    return [r[0] for r in rows]


def compute(conn: psycopg.Connection) -> Manifest:
    """The manifest of the database as the connection's snapshot sees it (use a REPEATABLE READ transaction)."""
    pin_session(conn)
    out = Manifest()
    for table in user_tables(conn):
        rows, checksum = table_checksum(conn, table)
        out.tables[table] = {"rows": rows, "checksum": checksum}
    seqs = conn.execute(
        "SELECT c.relname FROM pg_class c WHERE c.relkind = 'S' AND c.relnamespace = current_schema()::regnamespace"
        " ORDER BY 1"
    ).fetchall()
    for (name,) in seqs:
        row = conn.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(sql.Identifier(name))).fetchone()
        assert row is not None
        out.sequences[name] = [int(row[0]), bool(row[1])]
    out.roles = referenced_roles(conn)
    if "audit_log" in out.tables:
        seq, digest = audit.head(conn)
        out.audit_head = {"seq": seq, "hash": digest}
    return out


def differences(expected: Manifest, actual: Manifest) -> list[str]:
    """Human-readable mismatches, one per table or sequence; empty when the restore is faithful."""
    problems = []
    for table, want in sorted(expected.tables.items()):
        got = actual.tables.get(table)
        if got is None:
            problems.append(f"table {table}: missing after restore")
        elif got["rows"] != want["rows"]:
            problems.append(f"table {table}: {got['rows']} rows, expected {want['rows']}")
        elif got["checksum"] != want["checksum"]:
            problems.append(f"table {table}: checksum {got['checksum']} != expected {want['checksum']}")
    for name, want_seq in sorted(expected.sequences.items()):
        if actual.sequences.get(name) != want_seq:
            problems.append(f"sequence {name}: {actual.sequences.get(name)} != expected {want_seq}")
    if expected.audit_head and actual.audit_head != expected.audit_head:
        problems.append(f"audit head {actual.audit_head} != expected {expected.audit_head}")
    return problems
