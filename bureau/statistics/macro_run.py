"""Run the macro analysis for a month and store what the `bureau` role may see.

Series are monthly totals per division and per town (attributes as of each month). Models see only the trailing
run of months in which the scope's cell was published (not suppressed) — every input of every published figure
is itself published, so no result can be inverted into a figure that disclosure control hid. Run ``bureau
publish`` for the month first; a scope needs 24 published months before it gets forecasts.
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


def _published_runs(conn: psycopg.Connection, first: date, month: date, kind: str) -> dict[str, set[pd.Timestamp]]:
    """Scope → the months of the trailing run, ending at ``month``, in which its cell was published every month.

    Models are fitted on that run only: a fit over a hidden month could be inverted into it (each published
    forecast or adjusted value is a linear equation in the log values the model was fitted on).
    """
    table, column = _TABLE_OF[kind]
    extra = "AND industry_group = '*'" if kind == "division" else ""
    rows = conn.execute(
        f"SELECT {column}, month FROM bureau_published_cells WHERE month BETWEEN %s AND %s AND table_name = %s"
        f" AND {column} <> '*' AND suppression IS NULL {extra}",
        (first, month, table),
    ).fetchall()
    published: dict[str, set[date]] = {}
    for scope, m in rows:
        published.setdefault(scope, set()).add(m)
    runs: dict[str, set[pd.Timestamp]] = {}
    for scope, done in published.items():
        run, m = set(), month
        while m in done:
            run.add(pd.Timestamp(m))
            m = add_months(m, -1)
        if run:
            runs[scope] = run
    return runs


def run_macro(conn: psycopg.Connection, month: date, horizon: int = 6) -> MacroResult:
    first = add_months(month, -(HISTORY_MONTHS - 1))
    result = MacroResult(0, 0, 0, 0)
    with conn.transaction():
        for table in ("bureau_early_warnings", "bureau_nowcasts", "bureau_seasonal"):
            conn.execute(f"DELETE FROM {table} WHERE month = %s", (month,))
        conn.execute("DELETE FROM bureau_forecasts WHERE made_for = %s", (month,))
        for kind in ("division", "town"):
            runs = _published_runs(conn, first, month, kind)
            allowed = set(runs)
            series = monthly_series(conn, kind, first, month)
            keep = [m in runs.get(s, ()) for s, m in zip(series["scope"], series["month"], strict=True)]
            series = series[keep]
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
