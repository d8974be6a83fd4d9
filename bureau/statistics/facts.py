"""Loading the enterprise-level facts one month's statistics are computed from (the only raw-data reads).

One row per enterprise with a report in the month and a registry interval valid in that month: its attributes
as of that month, the month's figures (electricity from the platform where the enterprise is connected), its
year-to-date output, and — where it reported then — the same figures a year earlier for same-scope growth.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import psycopg

DIMENSIONS = ("division", "industry_group", "town", "park", "size_class", "ownership", "above_designated")
MEASURES = ("output_value", "sales_value", "revenue", "employment", "energy_tce", "electricity_kwh")

_FRAME_SQL = """
WITH cur AS (
    SELECT r.enterprise_id, v.division, v.industry_group, v.town, v.park, v.size_class, v.ownership,
        CASE WHEN v.above_designated THEN 'yes' ELSE 'no' END AS above_designated,
        v.plant_id IS NOT NULL AS connected, r.output_value, r.sales_value, r.revenue, r.employment, r.energy_tce,
        COALESCE(p.electricity_kwh, r.electricity_kwh) AS electricity_kwh, p.operating
    FROM bureau_reports r
    JOIN bureau_enterprise_versions v ON v.enterprise_id = r.enterprise_id
        AND r.month >= v.valid_from AND (v.valid_to IS NULL OR r.month < v.valid_to)
    LEFT JOIN bureau_platform_energy p ON p.enterprise_id = r.enterprise_id AND p.month = r.month
    WHERE r.month = %(m)s
), ytd AS (
    SELECT enterprise_id, sum(output_value) AS output_ytd FROM bureau_reports
    WHERE month BETWEEN date_trunc('year', %(m)s::date) AND %(m)s GROUP BY enterprise_id
), prev AS (
    SELECT r.enterprise_id, r.output_value AS prev_output, COALESCE(p.electricity_kwh, r.electricity_kwh) AS prev_kwh
    FROM bureau_reports r LEFT JOIN bureau_platform_energy p ON p.enterprise_id = r.enterprise_id AND p.month = r.month
    WHERE r.month = %(p)s
), prev_ytd AS (
    SELECT enterprise_id, sum(output_value) AS prev_ytd FROM bureau_reports
    WHERE month BETWEEN date_trunc('year', %(p)s::date) AND %(p)s GROUP BY enterprise_id
)
SELECT cur.*, ytd.output_ytd, prev.prev_output, prev.prev_kwh, prev_ytd.prev_ytd
FROM cur JOIN ytd USING (enterprise_id) LEFT JOIN prev USING (enterprise_id) LEFT JOIN prev_ytd USING (enterprise_id)
ORDER BY enterprise_id
"""


def year_earlier(month: date) -> date:
    return month.replace(year=month.year - 1)


def enterprise_frame(conn: psycopg.Connection, month: date) -> pd.DataFrame:
    cur = conn.execute(_FRAME_SQL, {"m": month, "p": year_earlier(month)})
    names = [d.name for d in cur.description or []]
    frame = pd.DataFrame(cur.fetchall(), columns=names)
    for column in (*MEASURES, "output_ytd", "prev_output", "prev_kwh", "prev_ytd"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame


def monthly_series(conn: psycopg.Connection, by: str, first: date, last: date) -> pd.DataFrame:
    """Monthly totals of output and electricity per value of one dimension (attributes as of each month)."""
    if by not in DIMENSIONS:
        raise ValueError(f"unknown dimension {by!r}; use one of {', '.join(DIMENSIONS)}")
    cur = conn.execute(
        f"""SELECT r.month, v.{by} AS scope, count(*) AS enterprises, sum(r.output_value) AS output_value,
               sum(COALESCE(p.electricity_kwh, r.electricity_kwh)) AS electricity_kwh
           FROM bureau_reports r
           JOIN bureau_enterprise_versions v ON v.enterprise_id = r.enterprise_id
               AND r.month >= v.valid_from AND (v.valid_to IS NULL OR r.month < v.valid_to)
           LEFT JOIN bureau_platform_energy p ON p.enterprise_id = r.enterprise_id AND p.month = r.month
           WHERE r.month BETWEEN %s AND %s GROUP BY 1, 2 ORDER BY 1, 2""",
        (first, last),
    )
    frame = pd.DataFrame(cur.fetchall(), columns=["month", "scope", "enterprises", "output_value", "electricity_kwh"])
    frame["month"] = pd.to_datetime(frame["month"])
    return frame
