"""The analytics result tables, declared once: name, columns, which cell result fills them, and the KPI columns
derived from the stored ones (which is how they roll up). Writers (``run``, ``rollups``, ``plant_results``) write
through the declaration, and ``tests/test_analytics_tables.py`` checks it against the migrated schema
(``information_schema``).

A KPI that is a function of a row's stored columns (a ratio of sums, a per-unit figure) is a ``Derived`` column: it
is computed at every write, for hour rows and for the shift/day/month rows summed from them alike, so it rolls up
correctly by construction. Adding one touches this file and a migration, nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import psycopg

from analytics import store
from analytics.oee import RATIO_COLUMNS, SUM_COLUMNS
from analytics.states import INTERVAL_COLUMNS
from analytics.tariff import BANDS


@dataclass(frozen=True)
class Derived:
    """A column computed from the row's other columns; NaN (stored NULL) where it is undefined."""

    name: str
    compute: Callable[[pd.DataFrame], pd.Series]


def ratio(numerator: str, denominator: str) -> Callable[[pd.DataFrame], pd.Series]:
    """``numerator / denominator``, NULL where the denominator is not positive."""

    def compute(frame: pd.DataFrame) -> pd.Series:
        den = frame[denominator].astype(float)
        return (frame[numerator].astype(float) / den).where(den > 0)

    return compute


@dataclass(frozen=True)
class ResultTable:
    name: str
    columns: tuple[str, ...]
    # The ``CellResults`` field holding a cell's per-period frames for this table (None: not a per-cell table).
    cell_field: str | None = None
    derived: tuple[Derived, ...] = ()
    # Columns the database fills itself (defaults), never written by code.
    database_fills: tuple[str, ...] = ()

    @property
    def written(self) -> list[str]:
        """Every column a writer COPYs, in order: the stored ones, then the derived KPIs."""
        return [*self.columns, *(d.name for d in self.derived)]

    def complete(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with the derived columns computed from its other columns."""
        if frame.empty or not self.derived:
            return frame
        return frame.assign(**{d.name: d.compute(frame) for d in self.derived})

    def write(self, conn: psycopg.Connection, frame: pd.DataFrame, *, where: str, params: tuple[Any, ...]) -> int:
        """Replace the rows of ``where`` with ``frame`` (derived columns included); the caller commits."""
        return store.replace(conn, self.name, self.complete(frame), columns=self.written, where=where, params=params)


PERIOD_KEYS = ("plant_id", "cell_id", "period", "time", "time_end")
STATE_INTERVALS_TABLE = ResultTable("state_intervals", ("plant_id", "cell_id", *INTERVAL_COLUMNS))
OEE_TABLE = ResultTable(
    "oee", (*PERIOD_KEYS, "shift_name", *SUM_COLUMNS, "ideal_cycle_time_s", *RATIO_COLUMNS),
    cell_field="oee", database_fills=("computed_at",),
)
DOWNTIME_TABLE = ResultTable(
    "downtime", (*PERIOD_KEYS, "state_code", "category", "reason", "time_element", "stops", "duration_s",
                 "microstops", "microstop_s"),
    cell_field="downtime",
)
ENERGY_TABLE = ResultTable(
    "energy", (*PERIOD_KEYS, "shift_name", "kwh", "idle_kwh", *(f"kwh_{b}" for b in BANDS), "cost",
               *(f"cost_{b}" for b in BANDS), "peak_kw_15min", "avg_kw", "load_factor", "tce", "good_count",
               "sec_kwh_per_unit", "source"),
    cell_field="energy", database_fills=("computed_at",),
)
PDM_HEALTH_TABLE = ResultTable(
    "pdm_health", ("plant_id", "cell_id", "signal_id", "time", "time_end", "value", "baseline_mean", "baseline_sd",
                   "ewma", "ewma_ucl", "ewma_lcl", "cusum_pos", "cusum_neg", "cusum_h", "we_rule", "drift", "zone",
                   "failure_threshold", "rul_p10_h", "rul_p50_h", "rul_p90_h"),
)
BASELINE_DAILY_TABLE = ResultTable(
    "energy_baseline_daily", ("plant_id", "time", "time_end", "phase", "actual_kwh", "production", "hdd", "cdd",
                              "expected_kwh", "pi_low_kwh", "pi_high_kwh", "savings_kwh", "cusum_kwh"),
)
BASELINE_TABLE = ResultTable(
    "energy_baseline", ("plant_id", "time", "time_end", "reporting_end", "formula", "params", "pvalues", "n_days",
                        "r2", "cv_rmse", "nmbe", "meets_ashrae14", "saving_fraction", "saving_kwh",
                        "saving_half_width", "saving_fsu", "saving_significant", "confidence"),
    database_fills=("computed_at",),
)

TABLES: dict[str, ResultTable] = {t.name: t for t in (
    STATE_INTERVALS_TABLE, OEE_TABLE, DOWNTIME_TABLE, ENERGY_TABLE, PDM_HEALTH_TABLE, BASELINE_DAILY_TABLE,
    BASELINE_TABLE,
)}
# The tables a cell's hour (and shift) results are written to, per period, in this order.
PER_CELL = tuple(t for t in TABLES.values() if t.cell_field is not None)

# Column lists for readers (``store.hour_rows``) and existing callers.
STATE_INTERVALS = STATE_INTERVALS_TABLE.written
OEE = OEE_TABLE.written
DOWNTIME = DOWNTIME_TABLE.written
ENERGY = ENERGY_TABLE.written
PDM_HEALTH = PDM_HEALTH_TABLE.written
BASELINE_DAILY = BASELINE_DAILY_TABLE.written
BASELINE = BASELINE_TABLE.written
