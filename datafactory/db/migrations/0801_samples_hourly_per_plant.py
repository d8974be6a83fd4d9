"""The dashboards' hourly roll-up refreshed per plant: ``df_rollup_samples_hourly(from, to, plant_id)``.

The two-argument function (0500) rewrites the hours of every signal of the city, so each plant's analytics run
cost grew with the number of plants, and two workers refreshing the same hours for different plants contended on
the same rows. The per-plant function touches only that plant's signals. On TimescaleDB the roll-up is a
continuous aggregate kept by its own policy (0501), so the function is a no-op there as well.
"""

from __future__ import annotations

import psycopg

from datafactory.db.migrate import MigrationContext

PLAIN = """
CREATE OR REPLACE FUNCTION df_rollup_samples_hourly(t_from timestamptz, t_to timestamptz, p_plant integer)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    lo timestamptz := date_bin('1 hour', t_from, timestamptz '2000-01-01');
    ids integer[] := ARRAY(SELECT id FROM signals WHERE plant_id = p_plant);
    written bigint;
BEGIN
    DELETE FROM samples_hourly WHERE signal_id = ANY(ids) AND time >= lo AND time < t_to;
    INSERT INTO samples_hourly (signal_id, time, avg, min, max, n)
    SELECT signal_id, date_bin('1 hour', time, timestamptz '2000-01-01'), avg(value), min(value), max(value), count(*)
    FROM samples
    WHERE signal_id = ANY(ids) AND time >= lo AND time < t_to AND value IS NOT NULL
    GROUP BY 1, 2;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END
$$
"""
TIMESCALE = """
CREATE OR REPLACE FUNCTION df_rollup_samples_hourly(t_from timestamptz, t_to timestamptz, p_plant integer)
RETURNS bigint LANGUAGE sql AS $$ SELECT 0::bigint $$
"""


def apply(conn: psycopg.Connection, ctx: MigrationContext) -> None:
    conn.execute(TIMESCALE if ctx.timescale else PLAIN)
