"""The `bureau` role and the only things it may read: views over disclosure-controlled published cells.

The role is created idempotently (roles are cluster-wide; NOLOGIN — a deployment grants it to a login role or
uses SET ROLE). Raw registry, reports, platform energy and plant data are revoked from PUBLIC and from `bureau`.
Views run with their owner's rights, so `bureau` reads published cells without any right on the tables.
Also loads the GB/T 4754-2017 code table so views can show industry names.
"""

from __future__ import annotations

import csv

import psycopg

from datafactory.codes.gbt4754 import TABLE_PATH
from datafactory.db.migrate import MigrationContext

ROLE = "bureau"

RAW_TABLES = (
    "bureau_enterprises",
    "bureau_enterprise_versions",
    "bureau_reports",
    "bureau_report_revisions",
    "bureau_platform_energy",
    "bureau_imports",
    "bureau_published_cells",
    "bureau_publish_runs",
    "bureau_early_warnings",
    "bureau_forecasts",
    "bureau_nowcasts",
    "bureau_seasonal",
    "bureau_sim_truth",
    "bureau_industry_codes",
    "plants",
    "cells",
    "signals",
    "samples",
)

MEASURES = """enterprises, output_value, output_ytd, sales_value, revenue, employment, energy_tce, electricity_kwh,
    yoy_growth, ytd_growth, electricity_index, energy_intensity, connected, operating_rate,
    suppression IS NOT NULL AS suppressed, suppression"""

VIEWS = {
    "bureau_v_city": f"""SELECT month, {MEASURES} FROM bureau_published_cells
        WHERE table_name = 'industry' AND division = '*'""",
    "bureau_v_industry": f"""SELECT c.month,
        CASE WHEN c.division = '*' THEN 'city' WHEN c.industry_group = '*' THEN 'division' ELSE 'group' END AS level,
        c.division, d.name AS division_name, c.industry_group, g.name AS group_name, {MEASURES}
        FROM bureau_published_cells c
        LEFT JOIN bureau_industry_codes d ON d.code = c.division
        LEFT JOIN bureau_industry_codes g ON g.code = c.industry_group
        WHERE c.table_name = 'industry'""",
    "bureau_v_town": f"""SELECT month, town, {MEASURES} FROM bureau_published_cells WHERE table_name = 'town'""",
    "bureau_v_park": f"""SELECT month, park, {MEASURES} FROM bureau_published_cells WHERE table_name = 'park'""",
    "bureau_v_size": f"""SELECT month, size_class, {MEASURES} FROM bureau_published_cells
        WHERE table_name = 'size'""",
    "bureau_v_ownership": f"""SELECT month, ownership, {MEASURES} FROM bureau_published_cells
        WHERE table_name = 'ownership'""",
    "bureau_v_above_designated": f"""SELECT month, above_designated, {MEASURES} FROM bureau_published_cells
        WHERE table_name = 'above_designated'""",
    "bureau_v_industry_codes": "SELECT code, level, parent, name FROM bureau_industry_codes",
    "bureau_v_early_warnings": """SELECT month, scope_kind, scope, measure, actual, expected, lower_bound, shortfall,
        yoy_growth FROM bureau_early_warnings""",
    "bureau_v_forecasts": """SELECT made_for, scope_kind, scope, month, forecast, lower_95, upper_95
        FROM bureau_forecasts""",
    "bureau_v_nowcasts": """SELECT month, scope_kind, scope, nowcast, lower_95, upper_95, electricity_growth
        FROM bureau_nowcasts""",
    "bureau_v_seasonal": """SELECT month, scope_kind, scope, output_value, seasonally_adjusted, spring_festival_effect
        FROM bureau_seasonal""",
}


def apply(conn: psycopg.Connection, ctx: MigrationContext) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS bureau_industry_codes (code text PRIMARY KEY, level text NOT NULL,"
        " parent text NOT NULL, name text NOT NULL)"
    )
    with TABLE_PATH.open(encoding="utf-8", newline="") as f:
        rows = [(r["code"], r["level"], r["parent"], r["name"]) for r in csv.DictReader(f)]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO bureau_industry_codes VALUES (%s, %s, %s, %s) ON CONFLICT (code) DO UPDATE"
            " SET level = EXCLUDED.level, parent = EXCLUDED.parent, name = EXCLUDED.name",
            rows,
        )
    # CREATE ROLE has no IF NOT EXISTS; concurrent migrations of several databases may race on it.
    conn.execute(
        f"""DO $$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}') THEN
                CREATE ROLE {ROLE} NOLOGIN;
            END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END $$"""
    )
    existing = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
    for table in RAW_TABLES:
        if table in existing:
            conn.execute(f"REVOKE ALL ON {table} FROM PUBLIC, {ROLE}")
    conn.execute(f"GRANT USAGE ON SCHEMA public TO {ROLE}")
    for name, body in VIEWS.items():
        conn.execute(f"CREATE OR REPLACE VIEW {name} AS {body}")
        conn.execute(f"REVOKE ALL ON {name} FROM PUBLIC")
        conn.execute(f"GRANT SELECT ON {name} TO {ROLE}")
