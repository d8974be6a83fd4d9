"""The platform's database roles and how they are created (cluster-wide objects, so creation must be race-safe).

    df_admin         operators: every privilege on the schema, all rows
    df_ingest        ingest workers: write the registry, samples, dead letters, health; all rows
    df_analytics     analytics: read everything per plant, write per-plant result tables; all rows
    bureau           the city bureau: disclosure-controlled views only (its grants belong to the bureau code)
    df_plant_reader  group role of every plant role: carries SELECT grants and the row-level policies
    df_plant_<e>_<s> one read-only role per plant (enterprise/site), mapped in plant_roles(role, plant_id)

Roles are created NOLOGIN. With ``login=True`` a role whose password variable is set (see ``password_var``) gets
LOGIN and a SCRAM-SHA-256 verifier computed client-side, so the plain password never travels in SQL text (and so
never into the server log). Identifiers always go through ``psycopg.sql.Identifier``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from datafactory.credentials import env_var_part, read_secret

log = logging.getLogger(__name__)

ADMIN = "df_admin"
INGEST = "df_ingest"
ANALYTICS = "df_analytics"
BUREAU = "bureau"  # created by the bureau migration 0201 too; same name, same NOLOGIN
PLANT_READER = "df_plant_reader"
SERVICE_ROLES = (ADMIN, INGEST, ANALYTICS)
PLANT_ROLE_PREFIX = "df_plant_"
_MAX_IDENT = 63  # PostgreSQL truncates longer identifiers: two plants could silently share a role

PASSWORD_VARS = {
    ADMIN: "DF_DB_ADMIN_PASSWORD",
    INGEST: "DF_DB_INGEST_PASSWORD",
    ANALYTICS: "DF_DB_ANALYTICS_PASSWORD",
    BUREAU: "DF_DB_BUREAU_PASSWORD",
}


def plant_role_name(enterprise: str, site: str, *, hashed: bool = False) -> str:
    """``df_plant_<enterprise>_<site>``, lower-case ``[a-z0-9_]``. Sanitising can map two plants to one name
    (``a-b/c`` and ``a/b-c``) and PostgreSQL truncates past 63 bytes, so ``hashed`` (or a long name) appends an
    8-hex digest of the exact ``enterprise/site``."""
    base = PLANT_ROLE_PREFIX + re.sub(r"[^a-z0-9_]", "_", f"{enterprise}_{site}".lower())
    if len(base) <= _MAX_IDENT and not hashed:
        return base
    digest = hashlib.sha256(f"{enterprise}/{site}".encode()).hexdigest()[:8]
    return f"{base[: _MAX_IDENT - 9]}_{digest}"


def plant_password_var(enterprise: str, site: str) -> str:
    """Environment variable holding a plant role's password, e.g. ``DF_GRAFANA_PLANT_ACME_DG_1_PASSWORD``.

    Grafana's datasource for the plant logs in as the plant role with it (``…_FILE`` names a file instead).
    """
    return f"DF_GRAFANA_PLANT_{env_var_part(enterprise)}_{env_var_part(site)}_PASSWORD"


def password_var(role: str, plant: tuple[str, str] | None = None) -> str:
    return plant_password_var(*plant) if plant else PASSWORD_VARS[role]


@dataclass
class RoleReport:
    created: list[str] = field(default_factory=list)
    login_enabled: list[str] = field(default_factory=list)
    no_password: list[str] = field(default_factory=list)


def role_exists(conn: psycopg.Connection, role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


def ensure_role(conn: psycopg.Connection, role: str, report: RoleReport) -> None:
    """CREATE ROLE … NOLOGIN unless it exists. Another database's ``db roles`` may race us: that is fine."""
    if role_exists(conn, role):
        return
    try:
        with conn.transaction():
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    except (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
        return  # created concurrently (roles are cluster-wide)
    report.created.append(role)


def ensure_member(conn: psycopg.Connection, group: str, member: str) -> None:
    row = conn.execute(
        "SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles r ON r.oid = m.member"
        " WHERE g.rolname = %s AND r.rolname = %s",
        (group, member),
    ).fetchone()
    if row is None:
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(member)))


def enable_login(
    conn: psycopg.Connection, role: str, var: str, report: RoleReport, env: Mapping[str, str] | None = None
) -> None:
    """Give ``role`` LOGIN with the password from ``var`` (or ``var_FILE``); report it when neither is set."""
    password = read_secret(var, env)
    if password is None:
        report.no_password.append(f"{role} (${var})")
        return
    verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()
    conn.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier)))
    report.login_enabled.append(role)
