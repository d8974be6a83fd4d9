"""Shift, day and month rows: sums of the stored hour rows of the periods a run touched.

Hours nest in plant-local days and months (and in shifts that start on whole hours), so summing hour time
elements, counts and kWh gives exactly the period's figures; ratios are recomputed from the sums and peak demand
is the largest hourly peak (15-minute windows nest in hours). Hours outside every shift belong to no shift row.
"""

from __future__ import annotations

import pandas as pd
import psycopg

from analytics import calendar, energy, oee, store, tables
from datafactory.config.analytics import AnalyticsConfig

WHERE = "plant_id = %s AND period = %s AND time >= %s AND time < %s"


def roll_up(
    conn: psycopg.Connection, plant: store.Plant, cfg: AnalyticsConfig, period: str, *, start: pd.Timestamp,
    end: pd.Timestamp,
) -> dict[str, int]:
    per = calendar.periods(period, cfg.calendar, plant.timezone, start, end)
    if per.empty:  # e.g. no shift overlaps a Sunday-only window
        return {}
    lo, hi = per["time"].min(), per["time_end"].max()
    written: dict[str, int] = {}
    cols = ["cell_id", "time", "time_end", *oee.SUM_COLUMNS, "ideal_cycle_time_s"]
    o = store.hour_rows(conn, "oee", plant.id, lo, hi, columns=cols)
    rolled = pd.DataFrame()
    if len(o):
        o = oee.assign_periods(o, per)
        ict = o.groupby("cell_id")["ideal_cycle_time_s"].first()
        rolled = oee.rollup(o, ["cell_id", "time", "shift_name"])
        rolled = rolled.assign(plant_id=plant.id, period=period, ideal_cycle_time_s=rolled["cell_id"].map(ict))
    written["oee"] = tables.TABLES["oee"].write(conn, rolled, where=WHERE, params=(plant.id, period, lo, hi))
    d = store.hour_rows(conn, "downtime", plant.id, lo, hi, columns=["cell_id", *tables.DOWNTIME[3:]])
    if len(d):
        d = oee.assign_periods(d, per)
        keys = ["cell_id", "time", "time_end", "state_code", "category", "reason", "time_element"]
        d = d.groupby(keys, as_index=False)[["stops", "duration_s", "microstops", "microstop_s"]].sum()
        d = d.assign(plant_id=plant.id, period=period)
    written["downtime"] = tables.TABLES["downtime"].write(conn, d, where=WHERE, params=(plant.id, period, lo, hi))
    cols = ["cell_id", "time", "time_end", *energy.ADDITIVE, "peak_kw_15min", "source"]
    e = store.hour_rows(conn, "energy", plant.id, lo, hi, columns=cols)
    if len(e):
        e = oee.assign_periods(e, per)
        src = e.groupby("cell_id")["source"].first()
        e = energy.rollup_energy(e, ["cell_id", "time", "shift_name"], cfg.tariff, cfg.kgce_per_kwh)
        e = e.assign(plant_id=plant.id, period=period, source=e["cell_id"].map(src))
    written["energy"] = tables.TABLES["energy"].write(conn, e, where=WHERE, params=(plant.id, period, lo, hi))
    return written
