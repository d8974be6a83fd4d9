"""Shift, day and month rows: the stored hour rows of the periods a run touched, rolled up as ``analytics.tables``
declares (per column: grouped by, summed, largest, smallest or first; derived KPIs recomputed from the result).

Hours nest in plant-local days and months (and in shifts that start on whole hours), so summing hour time
elements, counts, kWh and cost gives exactly the period's figures; ratios are recomputed from the sums and peak
demand is the largest hourly peak (15-minute windows nest in hours). Hours outside every shift belong to no shift
row.

A run hands over the hour rows it has just written for its window (``written``): only the hours of the touched
periods outside the window are read back (once per table for shifts, days and months together), none for a
backfill of whole months.
"""

from __future__ import annotations

import pandas as pd
import psycopg

from analytics import calendar, oee, store, tables
from datafactory.config.analytics import AnalyticsConfig


def roll_up(
    conn: psycopg.Connection, plant: store.Plant, cfg: AnalyticsConfig, kinds: tuple[str, ...], *,
    start: pd.Timestamp, end: pd.Timestamp, written: dict[str, pd.DataFrame],
) -> dict[str, int]:
    """Roll the hours of every period of the ``kinds`` (shift, day, month) that [start, end) touches up;
    ``written``: per table, the hour rows just written for [start, end) in this transaction. The stored hours the
    kinds need are read once per table, for all kinds at once."""
    pers = {k: calendar.periods(k, cfg.calendar, plant.timezone, start, end) for k in kinds}
    pers = {k: p for k, p in pers.items() if not p.empty}  # e.g. no shift overlaps a Sunday-only window
    if not pers:
        return {}
    lo = min(p["time"].min() for p in pers.values())
    hi = max(p["time_end"].max() for p in pers.values())
    spans = {k: (p["time"].min(), p["time_end"].max()) for k, p in pers.items()}
    # One DELETE and one COPY per table for all the kinds: the rows of each kind's own range are replaced.
    where = "plant_id = %s AND (" + " OR ".join(["(period = %s AND time >= %s AND time < %s)"] * len(spans)) + ")"
    params = (plant.id, *(x for k, (klo, khi) in spans.items() for x in (k, klo, khi)))
    counts: dict[str, int] = {}
    for table in tables.PER_CELL:
        hours = _hours(conn, table, plant.id, (lo, hi), (start, end, written.get(table.name)))
        parts = []
        for kind, per in pers.items():
            klo, khi = spans[kind]
            inside = hours[(hours["time"] >= klo) & (hours["time"] < khi)] if len(hours) else hours
            rows = rolled(table, inside, per)
            if len(rows):
                parts.append(rows.assign(plant_id=plant.id, period=kind))
        rows = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0] if parts else pd.DataFrame()
        counts[table.name] = table.write(conn, rows, where=where, params=params)
    return counts


def _hours(conn: psycopg.Connection, table: tables.ResultTable, plant_id: int,
           span: tuple[pd.Timestamp, pd.Timestamp],
           fresh: tuple[pd.Timestamp, pd.Timestamp, pd.DataFrame | None]) -> pd.DataFrame:
    """The hour rows of ``span``: stored ones outside the fresh window [start, end), the fresh ones as written — in
    time order, rows of one hour in the order they were written, as the database's index on time returns them."""
    lo, hi = span
    start, end, mine = fresh
    columns = [*table.group_keys, *table.aggregates]
    stored = store.hour_rows(conn, table.name, plant_id, lo, hi, columns=columns, besides=(start, end))
    # Summing in the same order gives the same last bits. An empty frame's object columns would turn numbers into
    # objects in a concat.
    if mine is None or mine.empty:
        return stored
    mine = mine.loc[(mine["time"] >= lo) & (mine["time"] < hi), columns]
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
