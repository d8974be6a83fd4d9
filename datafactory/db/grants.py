"""Table privileges of every role, the other half of ``datafactory db roles`` (``rls`` writes the policies).

Each relation ``rls.discover`` finds gets the grants its kind and scope call for: services their ordinary table
privileges, plant readers SELECT only where row-level security (or a security-invoker view) filters what they see,
partitions and definer views revoked from them, and the bureau nothing on per-plant tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from datafactory.db.roles import ADMIN, ANALYTICS, BUREAU, INGEST, PLANT_READER, SERVICE_ROLES

if TYPE_CHECKING:
    from datafactory.db.rls import Relation

# Written by ingest; analytics writes every other per-plant table (its results) plus late_writes bookkeeping.
INGEST_TABLES = frozenset(
    {
        "plants",
        "cells",
        "signals",
        "samples",
        "samples_typed",
        "sample_conflicts",
        "signal_type_changes",
        "dead_letters",
        "late_writes",
        "ingest_health",
        "gateway_status",
        "plant_configs",
    }
)
SECURITY_TABLES = frozenset({"plant_roles", "audit_log", "security_alerts", "schema_migrations"})
# The bureau's tables and views belong to the bureau code: its views are deliberately definer views (the bureau
# role reads published cells without any right on the tables), so they are never switched to security_invoker.
BUREAU_PREFIX = "bureau_"


def lock_partition(conn: psycopg.Connection, rel: Relation) -> None:
    """Partitions do not inherit the parent's RLS: nobody but the owner may touch them directly."""
    table = sql.Identifier(rel.name)
    conn.execute(
        sql.SQL("REVOKE ALL ON {} FROM PUBLIC, {}, {}").format(
            table, sql.Identifier(PLANT_READER), sql.Identifier(BUREAU)
        )
    )
    # No policy and no FORCE: readers see nothing even if granted; the owner still maintains partitions.
    conn.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(table))


def grant_schema(conn: psycopg.Connection) -> None:
    roles = sql.SQL(", ").join(sql.Identifier(r) for r in (*SERVICE_ROLES, PLANT_READER, BUREAU))
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(_schema(conn), roles))
    conn.execute(
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}, {}, {}").format(
            _schema(conn), sql.Identifier(INGEST), sql.Identifier(ANALYTICS), sql.Identifier(ADMIN)
        )
    )
    for fn in ("df_allowed_plants", "df_allowed_signals", "df_allowed_cells"):
        conn.execute(
            sql.SQL("GRANT EXECUTE ON FUNCTION {}() TO {}").format(sql.Identifier(fn), sql.Identifier(PLANT_READER))
        )
    conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION df_replication() TO {}").format(sql.Identifier(ADMIN)))


def _schema(conn: psycopg.Connection) -> sql.Identifier:
    row = conn.execute("SELECT current_schema()").fetchone()
    assert row is not None
    return sql.Identifier(row[0])


def grant_table(conn: psycopg.Connection, rel: Relation, *, viewed: bool = False) -> None:
    """Table privileges per role. Only the bureau's access to per-plant tables is revoked; its other grants
    (on its own disclosure-controlled views) belong to the bureau code and are left alone."""
    table = sql.Identifier(rel.name)

    def grant(privileges: str, role: str) -> None:
        conn.execute(sql.SQL("GRANT " + privileges + " ON {} TO {}").format(table, sql.Identifier(role)))

    def revoke(role: str) -> None:
        conn.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(table, sql.Identifier(role)))

    if rel.is_partition:
        return
    if rel.name == "audit_log":
        for role in (*SERVICE_ROLES, BUREAU):
            grant("INSERT, SELECT (seq)", role)  # seq: for record()'s RETURNING, nothing else is readable
        grant("SELECT", ADMIN)
        return
    if rel.name in SECURITY_TABLES:
        grant("SELECT", ADMIN)
        if rel.name == "schema_migrations":  # every service checks the schema version before it starts
            for role in SERVICE_ROLES:
                grant("SELECT", role)
        if rel.name == "security_alerts":
            grant("INSERT, UPDATE", ADMIN)
        return
    scoped = rel.scope_column is not None
    if rel.name.startswith(BUREAU_PREFIX):
        grant("ALL", ADMIN)
        if scoped:
            revoke(PLANT_READER)  # bureau-held data about a plant is the bureau's, not the plant's dashboard's
        return
    if rel.kind in ("v", "m"):
        if rel.kind == "v" and rel.security_invoker:
            grant("SELECT", PLANT_READER)
        else:
            revoke(PLANT_READER)  # a definer view would read base tables as its owner, past RLS
        grant("SELECT", ADMIN)
        grant("SELECT", ANALYTICS)
        return
    grant("ALL", ADMIN)
    grant("SELECT", ANALYTICS)
    if rel.name in INGEST_TABLES:
        grant("SELECT, INSERT, UPDATE", INGEST)
        if rel.name == "late_writes":
            grant("UPDATE", ANALYTICS)  # marks late writes processed
    elif scoped:
        grant("SELECT, INSERT, UPDATE, DELETE", ANALYTICS)  # per-plant results, recomputed in place
    if scoped:
        if viewed:
            revoke(PLANT_READER)  # plant roles read it through df_plant_views only
        else:
            grant("SELECT", PLANT_READER)
        revoke(BUREAU)
    else:
        revoke(PLANT_READER)
