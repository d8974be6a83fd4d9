"""Tenancy support for row-level security: the role → plant mapping and the functions policies call.

``datafactory db roles`` (datafactory.db.rls) creates the roles and policies; this migration only creates
what they reference. The functions run as the invoker (``current_user`` must be the querying role) with a fixed
search_path that names the schema explicitly and puts ``pg_temp`` last, so a reader cannot shadow ``plant_roles``
or ``signals`` with a temporary table of its own.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from datafactory.db.migrate import MigrationContext

TABLE = """
CREATE TABLE IF NOT EXISTS plant_roles (
    role       text NOT NULL,
    plant_id   integer NOT NULL REFERENCES plants(id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (role, plant_id)
)
"""

FUNCTIONS = """
CREATE OR REPLACE FUNCTION {schema}.df_allowed_plants() RETURNS integer[]
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, {schema}, pg_temp AS $f$
    SELECT coalesce(array_agg(plant_id ORDER BY plant_id), ARRAY[]::integer[])
    FROM {schema}.plant_roles WHERE role = current_user
$f$;
CREATE OR REPLACE FUNCTION {schema}.df_allowed_signals() RETURNS integer[]
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, {schema}, pg_temp AS $f$
    SELECT coalesce(array_agg(id ORDER BY id), ARRAY[]::integer[])
    FROM {schema}.signals WHERE plant_id = ANY ({schema}.df_allowed_plants())
$f$;
CREATE OR REPLACE FUNCTION {schema}.df_allowed_cells() RETURNS integer[]
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, {schema}, pg_temp AS $f$
    SELECT coalesce(array_agg(id ORDER BY id), ARRAY[]::integer[])
    FROM {schema}.cells WHERE plant_id = ANY ({schema}.df_allowed_plants())
$f$;
"""


def apply(conn: psycopg.Connection, ctx: MigrationContext) -> None:
    conn.execute(TABLE)
    row = conn.execute("SELECT current_schema()").fetchone()
    assert row is not None
    conn.execute(sql.SQL(FUNCTIONS).format(schema=sql.Identifier(row[0])))
