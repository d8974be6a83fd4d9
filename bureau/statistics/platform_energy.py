"""Electricity of connected enterprises, measured by the platform itself, for ``bureau_platform_energy``.

For each enterprise whose registry interval valid in the month links a plant:
  1. the analytics engineer's ``energy`` results: the sum of ``period = 'day'`` rows whose day starts inside the
     month (plant-local time);
  2. otherwise the raw meters: the sum of positive increments between consecutive samples of every
     ``energy_kwh`` signal inside the month (a meter reset contributes nothing instead of a negative jump).
To avoid counting a machine and the utility main meter twice, only cells in the area ``utilities`` are used
when the plant has any; otherwise all cells. A plant is ``operating`` in the month when it consumed at least
``operating_kwh`` (default 1 kWh per day of the month). Metered figures take precedence over reported ones
in every statistic (``bureau.statistics.facts``).
"""

from __future__ import annotations

import calendar as _calendar
from datetime import date

import psycopg

from datafactory.codes.calendar import add_months

_PLANTS_SQL = """
SELECT v.enterprise_id, v.plant_id, p.timezone
FROM bureau_enterprise_versions v JOIN plants p ON p.id = v.plant_id
WHERE v.plant_id IS NOT NULL AND v.valid_from <= %(m)s AND (v.valid_to IS NULL OR v.valid_to > %(m)s)
"""

# Cells counted for a plant: its utilities area if it has one, else every cell.
_CELLS = """
    SELECT c.id FROM cells c WHERE c.plant_id = %(plant)s
      AND (c.area = 'utilities' OR NOT EXISTS (SELECT 1 FROM cells u WHERE u.plant_id = %(plant)s
                                               AND u.area = 'utilities'))
"""

_FROM_RESULTS = f"""
SELECT sum(kwh) FROM energy
WHERE plant_id = %(plant)s AND period = 'day' AND cell_id IN ({_CELLS})
  AND time >= (%(m)s::timestamp AT TIME ZONE %(tz)s) AND time < (%(n)s::timestamp AT TIME ZONE %(tz)s)
"""

_FROM_SAMPLES = f"""
SELECT sum(GREATEST(d, 0)) FROM (
    SELECT value - lag(value) OVER (PARTITION BY signal_id ORDER BY time) AS d
    FROM samples
    WHERE signal_id IN (SELECT id FROM signals WHERE meaning = 'energy_kwh' AND cell_id IN ({_CELLS}))
      AND value IS NOT NULL
      AND time >= (%(m)s::timestamp AT TIME ZONE %(tz)s) AND time < (%(n)s::timestamp AT TIME ZONE %(tz)s)
) increments
"""


def sync_platform_energy(conn: psycopg.Connection, month: date, *, operating_kwh_per_day: float = 1.0) -> int:
    """(Re)compute the month's platform electricity for every connected enterprise. Returns rows written."""
    params = {"m": month, "n": add_months(month, 1)}
    days = _calendar.monthrange(month.year, month.month)[1]
    written = 0
    with conn.transaction():
        for enterprise_id, plant_id, tz in conn.execute(_PLANTS_SQL, params).fetchall():
            args = {**params, "plant": plant_id, "tz": tz}
            row = conn.execute(_FROM_RESULTS, args).fetchone()
            kwh, source = (row[0] if row else None), "energy"
            if kwh is None:
                row = conn.execute(_FROM_SAMPLES, args).fetchone()
                kwh, source = (row[0] if row else None), "samples"
            if kwh is None:
                continue
            conn.execute(
                "INSERT INTO bureau_platform_energy (enterprise_id, month, electricity_kwh, operating, source)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (enterprise_id, month) DO UPDATE SET"
                " electricity_kwh = EXCLUDED.electricity_kwh, operating = EXCLUDED.operating,"
                " source = EXCLUDED.source, computed_at = now()",
                (enterprise_id, month, float(kwh), float(kwh) >= operating_kwh_per_day * days, source),
            )
            written += 1
    return written
