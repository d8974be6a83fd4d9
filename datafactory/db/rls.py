"""``datafactory db roles``: roles, grants (``grants``) and row-level security for every per-plant table, idempotently.

Tables are discovered, not listed: every table of the schema with a ``plant_id`` column (and ``plants`` itself by
``id``) is per-plant; tables with a ``signal_id`` or ``cell_id`` column but no ``plant_id`` (``samples``,
``late_writes``) are per-plant through the registry. Each gets ENABLE + FORCE ROW LEVEL SECURITY and two policies
(except hypertables and the tables ingest fills by COPY, served through filtered views: ``plant_views``):

* ``df_plant_read_v1`` FOR SELECT TO df_plant_reader — a plant role sees only rows of the plants mapped to it in
  ``plant_roles``. The allowed ids come from STABLE functions wrapped in a scalar sub-select, so they are computed
  once per query (an InitPlan) and the user's own predicates still drive index scans and partition pruning.
* ``df_service_v1`` FOR ALL TO df_admin, df_ingest, df_analytics and the table owner — all rows. A permissive
  policy rather than BYPASSRLS: BYPASSRLS is cluster-wide, needs a superuser to grant, and would also exempt the
  services from any policy added later; the policy is scoped to exactly these tables and the services still
  need ordinary table privileges. FORCE keeps a non-superuser table owner under RLS too (it is in the policy).

Any other role (including bureau) has no policy on these tables, so even a stray GRANT yields zero rows.
Partitions are revoked from readers: RLS is enforced through the partitioned parent only. Views are granted to
plant roles only when ``security_invoker`` (then RLS applies to the reader); every view except the bureau's
(``bureau_*``) is switched to it, so ``signal_paths`` and the analytics roll-ups work for plant dashboards.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from datafactory.db import audit, plant_views, timescale
from datafactory.db.grants import (  # noqa: F401  (INGEST_TABLES re-exported)
    BUREAU_PREFIX,
    INGEST_TABLES,
    SECURITY_TABLES,
    grant_schema,
    grant_table,
    lock_partition,
)
from datafactory.db.roles import (
    BUREAU,
    PASSWORD_VARS,
    PLANT_READER,
    SERVICE_ROLES,
    RoleReport,
    enable_login,
    ensure_member,
    ensure_role,
    plant_password_var,
    plant_role_name,
)

log = logging.getLogger(__name__)

POLICY_READ = "df_plant_read_v1"
POLICY_SERVICE = "df_service_v1"
_ALLOWED = {
    "plant_id": "plant_id = ANY ((SELECT df_allowed_plants())::integer[])",
    "id": "id = ANY ((SELECT df_allowed_plants())::integer[])",
    "signal_id": "signal_id = ANY ((SELECT df_allowed_signals())::integer[])",
    "cell_id": "cell_id = ANY ((SELECT df_allowed_cells())::integer[])",
}


@dataclass(frozen=True)
class Relation:
    name: str
    kind: str  # 'r' table, 'p' partitioned table, 'v' view, 'm' materialized view
    is_partition: bool
    columns: frozenset[str]
    owner: str
    security_invoker: bool

    @property
    def scope_column(self) -> str | None:
        """The column the plant policy filters on, or None when the table is not per-plant."""
        if self.kind not in ("r", "p") or self.is_partition or self.name in SECURITY_TABLES:
            return None
        if self.name == "plants":
            return "id"
        for column in ("plant_id", "signal_id", "cell_id"):
            if column in self.columns:
                return column
        return None


@dataclass
class ProvisionReport:
    roles: RoleReport = field(default_factory=RoleReport)
    plant_roles: dict[str, int] = field(default_factory=dict)
    protected: list[str] = field(default_factory=list)
    viewed: list[str] = field(default_factory=list)  # per-plant views instead of RLS (plant_views)
    partitions_revoked: list[str] = field(default_factory=list)


def discover(conn: psycopg.Connection) -> list[Relation]:
    rows = conn.execute(
        """
        SELECT c.relname, c.relkind, c.relispartition,
               coalesce(array_agg(a.attname::text) FILTER (WHERE a.attnum > 0 AND NOT a.attisdropped), '{}'),
               pg_get_userbyid(c.relowner),
               coalesce('security_invoker=true' = ANY (c.reloptions) OR 'security_invoker=on' = ANY (c.reloptions),
                        false)
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attribute a ON a.attrelid = c.oid
        WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm')
        GROUP BY c.oid ORDER BY c.relname
        """
    ).fetchall()
    return [Relation(r[0], r[1], r[2], frozenset(r[3]), r[4], r[5]) for r in rows]


def provision(
    conn: psycopg.Connection,
    *,
    actor: str,
    login: bool = False,
    env: Mapping[str, str] | None = None,
    view_tables: frozenset[str] = frozenset(),
) -> ProvisionReport:
    """Create roles, map plant roles, apply grants and policies, audit it; commits. Safe to re-run any time.

    Tables that cannot carry RLS safely (TimescaleDB hypertables, or those named in ``view_tables``) are served
    to plant roles through filtered views instead (``plant_views``).
    """
    report = ProvisionReport()
    for role in (*SERVICE_ROLES, BUREAU, PLANT_READER):
        ensure_role(conn, role, report.roles)
    plants = conn.execute("SELECT id, enterprise, site FROM plants ORDER BY id").fetchall()
    for plant_id, enterprise, site in plants:
        role = _plant_role_for(conn, plant_id, enterprise, site)
        ensure_role(conn, role, report.roles)
        ensure_member(conn, PLANT_READER, role)
        conn.execute(
            "INSERT INTO plant_roles (role, plant_id) VALUES (%s, %s) ON CONFLICT DO NOTHING", (role, plant_id)
        )
        report.plant_roles[role] = plant_id
        if login:
            enable_login(conn, role, plant_password_var(enterprise, site), report.roles, env)
    if login:
        for role, var in PASSWORD_VARS.items():
            enable_login(conn, role, var, report.roles, env)
    conn.commit()  # role creation is cluster-wide: do not hold its locks while we alter tables

    # Policy DDL takes an ACCESS EXCLUSIVE lock: behind a long transaction it would stall ingest queued after it.
    # Fail fast instead (re-run later); tables already in the wanted state are not touched at all.
    conn.execute("SET lock_timeout = '5s'")

    # TimescaleDB continuous aggregates (the hourly roll-up) read their materialisation as their owner, whatever
    # the reader: like hypertables they are served to plant roles through filtered views.
    aggregates = timescale.continuous_aggregates(conn)
    for rel in discover(conn):
        if rel.name in aggregates:
            continue
        if rel.kind == "v" and not rel.security_invoker and not rel.name.startswith(BUREAU_PREFIX):
            conn.execute(sql.SQL("ALTER VIEW {} SET (security_invoker = true)").format(sql.Identifier(rel.name)))
    relations = discover(conn)
    grant_schema(conn)
    for rel in relations:
        if rel.is_partition:
            lock_partition(conn, rel)
            report.partitions_revoked.append(rel.name)
        elif rel.name in aggregates and "signal_id" in rel.columns:
            report.viewed.append(rel.name)
            grant_table(conn, rel, viewed=True)  # a definer view: revoked from plant readers, readable by services
            plant_views.protect_with_view(conn, rel.name, _ALLOWED["signal_id"], reader=PLANT_READER, denied=(BUREAU,))
            continue
        elif rel.scope_column is not None:
            if rel.name in view_tables or plant_views.needs_view(conn, rel.name):
                report.viewed.append(rel.name)
                plant_views.drop_row_security(conn, rel.name, (POLICY_READ, POLICY_SERVICE))
            else:
                _protect(conn, rel, rel.scope_column)
                report.protected.append(rel.name)
        grant_table(conn, rel, viewed=rel.name in report.viewed)
        if rel.name in report.viewed and rel.scope_column is not None:
            plant_views.protect_with_view(
                conn, rel.name, _ALLOWED[rel.scope_column], reader=PLANT_READER, denied=(BUREAU,)
            )
    if report.viewed:
        if {"samples", "samples_typed"} & set(report.viewed):
            plant_views.protect_sample_values(conn, report.viewed, reader=PLANT_READER)
        plant_views.route_plant_roles(conn, report.plant_roles)
    _protect_plant_roles(conn)
    details: dict[str, Any] = {
        "created_roles": report.roles.created,
        "plant_roles": report.plant_roles,
        "protected_tables": report.protected,
        "view_tables": report.viewed,
        "login_enabled": report.roles.login_enabled,
    }
    audit.record(conn, actor, "db_roles", "database", details)
    conn.commit()
    conn.execute("RESET lock_timeout")
    return report


def _plant_role_for(conn: psycopg.Connection, plant_id: int, enterprise: str, site: str) -> str:
    """The plant's existing role, or a new name; a name already mapped to another plant gets a hash suffix."""
    row = conn.execute("SELECT role FROM plant_roles WHERE plant_id = %s ORDER BY role LIMIT 1", (plant_id,)).fetchone()
    if row:
        return str(row[0])
    role = plant_role_name(enterprise, site)
    taken = conn.execute("SELECT 1 FROM plant_roles WHERE role = %s", (role,)).fetchone()
    if taken:
        role = plant_role_name(enterprise, site, hashed=True)
    return role


def _already_protected(conn: psycopg.Connection, rel: Relation) -> bool:
    """RLS forced and both current policies present for the right roles: a re-run then takes no table lock."""
    row = conn.execute(
        """
        SELECT c.relrowsecurity AND c.relforcerowsecurity,
               (SELECT array_agg(p.policyname::text || ':' || array_to_string(ARRAY(SELECT unnest(p.roles::text[])
                                 ORDER BY 1), ',') ORDER BY p.policyname)
                FROM pg_policies p WHERE p.schemaname = current_schema() AND p.tablename = c.relname
                AND p.policyname LIKE 'df\\_%%')
        FROM pg_class c WHERE c.oid = %s::regclass
        """,
        (rel.name,),
    ).fetchone()
    service = ",".join(sorted(set((*SERVICE_ROLES, rel.owner))))
    expected = [f"{POLICY_READ}:{PLANT_READER}", f"{POLICY_SERVICE}:{service}"]
    return row is not None and bool(row[0]) and row[1] == expected


def _protect(conn: psycopg.Connection, rel: Relation, column: str) -> None:
    if _already_protected(conn, rel):
        return
    table = sql.Identifier(rel.name)
    conn.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(table))
    conn.execute(sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(table))
    _replace_policy(
        conn,
        rel.name,
        POLICY_READ,
        sql.SQL("FOR SELECT TO {} USING ({})").format(
            sql.Identifier(PLANT_READER),
            sql.SQL(_ALLOWED[column]),  # constant text, no user input
        ),
    )
    service = sql.SQL(", ").join(sql.Identifier(r) for r in dict.fromkeys((*SERVICE_ROLES, rel.owner)))
    _replace_policy(
        conn, rel.name, POLICY_SERVICE, sql.SQL("FOR ALL TO {} USING (true) WITH CHECK (true)").format(service)
    )


def _replace_policy(conn: psycopg.Connection, table: str, name: str, body: sql.Composed) -> None:
    """Drop old-version df_ policies; (re)create ``name``. Each DDL takes a brief ACCESS EXCLUSIVE lock."""
    existing = [
        r[0]
        for r in conn.execute(
            "SELECT policyname FROM pg_policies WHERE schemaname = current_schema() AND tablename = %s"
            " AND policyname LIKE 'df\\_%%'",
            (table,),
        ).fetchall()
    ]
    prefix = name.rsplit("_v", 1)[0]
    for old in existing:
        if old.startswith(prefix) and old != name:
            conn.execute(sql.SQL("DROP POLICY {} ON {}").format(sql.Identifier(old), sql.Identifier(table)))
    conn.execute(sql.SQL("DROP POLICY IF EXISTS {} ON {}").format(sql.Identifier(name), sql.Identifier(table)))
    conn.execute(sql.SQL("CREATE POLICY {} ON {} ").format(sql.Identifier(name), sql.Identifier(table)) + body)


def _protect_plant_roles(conn: psycopg.Connection) -> None:
    """A plant role may read its own mapping (the policy functions run as the reader) and nothing else."""
    conn.execute("ALTER TABLE plant_roles ENABLE ROW LEVEL SECURITY")
    _replace_policy(
        conn,
        "plant_roles",
        POLICY_READ,
        sql.SQL("FOR SELECT TO {} USING (role = current_user)").format(sql.Identifier(PLANT_READER)),
    )
    conn.execute(sql.SQL("GRANT SELECT ON plant_roles TO {}").format(sql.Identifier(PLANT_READER)))
