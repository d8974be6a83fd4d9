"""Shift, day and month rows: the stored hour rows of the periods a run touched, rolled up as ``analytics.tables``
declares (per column: grouped by, summed, largest, smallest or first; derived KPIs recomputed from the result).

Hours nest in plant-local days and months (and in shifts that start on whole hours), so summing hour time
elements, counts, kWh and cost gives exactly the period's figures; ratios are recomputed from the sums and peak
demand is the largest hourly peak (15-minute windows nest in hours). Hours outside every shift belong to no shift
row.

A run hands over the hour rows it has just written for its window (``written``): only the hours of the touched
periods outside the window are read back, none for a backfill of whole months.
"""

from __future__ import annotations

import pandas as pd
import psycopg

from analytics import calendar, oee, store, tables
from datafactory.config.analytics import AnalyticsConfig

WHERE = "plant_id = %s AND period = %s AND time >= %s AND time < %s"


def roll_up(
    conn: psycopg.Connection, plant: store.Plant, cfg: AnalyticsConfig, period: str, *, start: pd.Timestamp,
    end: pd.Timestamp, written: dict[str, pd.DataFrame] | None = None,
) -> dict[str, int]:
    """Roll the hours of every period of kind ``period`` that [start, end) touches up; ``written``: per table, the
    hour rows just written for [start, end) in this transaction (None: read them all back)."""
    per = calendar.periods(period, cfg.calendar, plant.timezone, start, end)
    if per.empty:  # e.g. no shift overlaps a Sunday-only window
        return {}
    lo, hi = per["time"].min(), per["time_end"].max()
    where = (plant.id, period, lo, hi)
    fresh = (start, end, written) if written is not None else None
    return {t.name: roll_table(conn, t, per, where, fresh) for t in tables.PER_CELL}


def _hours(conn: psycopg.Connection, table: tables.ResultTable, where: tuple[int, str, pd.Timestamp, pd.Timestamp],
           fresh: tuple[pd.Timestamp, pd.Timestamp, dict[str, pd.DataFrame]] | None) -> pd.DataFrame:
    """The hour rows of [lo, hi): stored ones outside the fresh window, the fresh ones as written — in time order,
    rows of one hour in the order they were written, as the database's index on time returns them all."""
    plant_id, _, lo, hi = where
    columns = [*table.group_keys, *table.aggregates]
    if fresh is None:
        return store.hour_rows(conn, table.name, plant_id, lo, hi, columns=columns)
    start, end, written = fresh
    stored = store.hour_rows(conn, table.name, plant_id, lo, hi, columns=columns, besides=(start, end))
    mine = written.get(table.name)
    mine = mine.loc[(mine["time"] >= lo) & (mine["time"] < hi), columns] if mine is not None and len(mine) else None
    # Summing in the same order gives the same last bits. An empty frame's object columns would turn numbers into
    # objects in a concat.
    if mine is None or mine.empty:
        return stored
    hours = pd.concat([stored, mine], ignore_index=True) if len(stored) else mine
    return hours.sort_values("time", kind="stable").reset_index(drop=True)


def rolled(table: tables.ResultTable, hours: pd.DataFrame, periods: pd.DataFrame) -> pd.DataFrame:
    """``hours`` (the table's keys and aggregated columns) rolled up into ``periods``, without plant and period."""
    if hours.empty:
        return pd.DataFrame()
    moved = oee.assign_periods(hours, periods)  # time, time_end (and shift_name) of the containing period
    # dropna=False: a NULL key (e.g. a downtime reason) is a group of its own, never dropped.
    groups = moved.groupby(table.group_keys, sort=True, dropna=False)
    # One aggregation call per kind (sum, max, …) over all its columns: the same kernels per column as a named
    # aggregation per column, without its per-column overhead.
    kinds: dict[str, list[str]] = {}
    for col, how in table.aggregates.items():
        kinds.setdefault(how, []).append(col)
    parts = [getattr(groups[cols], how)() for how, cols in kinds.items()]
    out = pd.concat(parts, axis=1) if len(parts) > 1 else parts[0]
    return out[list(table.aggregates)].reset_index()


def roll_table(
    conn: psycopg.Connection, table: tables.ResultTable, per: pd.DataFrame,
    where: tuple[int, str, pd.Timestamp, pd.Timestamp],
    fresh: tuple[pd.Timestamp, pd.Timestamp, dict[str, pd.DataFrame]] | None = None,
) -> int:
    """Replace ``table``'s rows of one plant, period kind and range (``WHERE``'s parameters) with roll-ups."""
    plant_id, period = where[:2]
    hours = _hours(conn, table, where, fresh)
    rows = rolled(table, hours, per)
    if len(rows):
        rows = rows.assign(plant_id=plant_id, period=period)
    return table.write(conn, rows, where=WHERE, params=where)
