"""View of the published division × above-designated-size table, readable by the `bureau` role."""

from __future__ import annotations

import psycopg

from datafactory.db.migrate import MigrationContext

BODY = """SELECT c.month, c.division, d.name AS division_name, c.above_designated, c.enterprises, c.output_value,
    c.output_ytd, c.sales_value, c.revenue, c.employment, c.energy_tce, c.electricity_kwh, c.yoy_growth, c.ytd_growth,
    c.electricity_index, c.energy_intensity, c.connected, c.operating_rate, c.suppression IS NOT NULL AS suppressed,
    c.suppression
    FROM bureau_published_cells c LEFT JOIN bureau_industry_codes d ON d.code = c.division
    WHERE c.table_name = 'division_above'"""


def apply(conn: psycopg.Connection, ctx: MigrationContext) -> None:
    conn.execute(f"CREATE OR REPLACE VIEW bureau_v_division_above AS {BODY}")
    conn.execute("REVOKE ALL ON bureau_v_division_above FROM PUBLIC")
    conn.execute("GRANT SELECT ON bureau_v_division_above TO bureau")
