"""Run the macro analysis for a month and store what the `bureau` role may see.

Series are monthly totals per division and per town (attributes as of each month). Results are stored only
for scopes whose cell in the month's published tables is not suppressed, so an analysis result can never
reveal a figure that disclosure control hid. Run ``bureau publish`` for the month first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd
import psycopg

from bureau.statistics.facts import monthly_series
from bureau.statistics.macro import early_warnings, forecast, nowcast, seasonal_adjust
from datafactory.codes.calendar import add_months

HISTORY_MONTHS = 60
_TABLE_OF = {"division": ("industry", "division"), "town": ("town", "town")}


@dataclass
class MacroResult:
    warnings: int
    forecasts: int
    nowcasts: int
    seasonal: int


def _published_scopes(conn: psycopg.Connection, month: date, kind: str) -> set[str]:
    table, column = _TABLE_OF[kind]
    extra = "AND industry_group = '*'" if kind == "division" else ""
    rows = conn.execute(
        f"SELECT {column} FROM bureau_published_cells WHERE month = %s AND table_name = %s AND {column} <> '*'"
        f" AND suppression IS NULL {extra}",
        (month, table),
    ).fetchall()
    return {r[0] for r in rows}


def run_macro(conn: psycopg.Connection, month: date, horizon: int = 6) -> MacroResult:
    first = add_months(month, -(HISTORY_MONTHS - 1))
    result = MacroResult(0, 0, 0, 0)
    with conn.transaction():
        for table in ("bureau_early_warnings", "bureau_nowcasts", "bureau_seasonal"):
            conn.execute(f"DELETE FROM {table} WHERE month = %s", (month,))
        conn.execute("DELETE FROM bureau_forecasts WHERE made_for = %s", (month,))
        for kind in ("division", "town"):
            allowed = _published_scopes(conn, month, kind)
            series = monthly_series(conn, kind, first, month)
            for w in early_warnings(series, month):
                if w.scope in allowed:
                    conn.execute(
                        "INSERT INTO bureau_early_warnings VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        (month, kind, w.scope, w.measure, w.actual, w.expected, w.lower, w.shortfall, w.yoy_growth),
                    )
                    result.warnings += 1
            for scope, rows in series.groupby("scope"):
                if scope not in allowed:
                    continue
                group = rows.set_index("month").sort_index()
                if len(group) < 24 or group.index[-1] != pd.Timestamp(month):
                    continue
                sa = seasonal_adjust(group["output_value"])
                row = sa.iloc[-1]
                conn.execute(
                    "INSERT INTO bureau_seasonal VALUES (%s, %s, %s, %s, %s, %s)",
                    (month, kind, scope, float(row["value"]), float(row["seasonally_adjusted"]),
                     float(row["festival_effect"])),
                )
                result.seasonal += 1
                for when, f in forecast(group["output_value"], horizon).iterrows():
                    conn.execute(
                        "INSERT INTO bureau_forecasts VALUES (%s, %s, %s, %s, %s, %s, %s)",
                        (month, kind, scope, pd.Timestamp(str(when)).date(), float(f["forecast"]), float(f["lower"]),
                         float(f["upper"])),
                    )
                    result.forecasts += 1
                now = nowcast(group["output_value"], group["electricity_kwh"], month)
                if now is not None:
                    conn.execute(
                        "INSERT INTO bureau_nowcasts VALUES (%s, %s, %s, %s, %s, %s, %s)",
                        (month, kind, scope, now.nowcast, now.lower, now.upper, now.electricity_growth),
                    )
                    result.nowcasts += 1
    return result
