"""The analytics result tables, declared once: name, columns, which cell result fills them, how each column rolls
up from hours into shifts, days and months, and the KPI columns derived from the stored ones. Writers (``run``,
``rollups``, ``plant_results``) and the roll-ups work from the declaration, and ``tests/test_analytics_tables.py``
checks it against the migrated schema (``information_schema``).

A column of a rolled-up table says how it rolls up: ``key`` (the row's identity: grouped by), ``summed`` (time
elements, counts, kWh, cost), ``largest``/``smallest`` (e.g. the peak 15-minute demand: quarters nest in hours) or
``first`` (a per-cell constant such as the ideal cycle time). A KPI that is a function of a row's stored columns (a
ratio of sums, a per-unit figure) is a ``Derived`` column: it is computed at every write, for hour rows and for the
rows rolled up from them alike, so it rolls up correctly by construction. Adding one touches this file and a
migration, nothing else (docs/analytics.md, "Adding a KPI").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd
import psycopg

from analytics import energy, oee, store
from analytics.oee import SUM_COLUMNS
from analytics.states import INTERVAL_COLUMNS
from analytics.tariff import BANDS


class Roll(Enum):
    """How a stored column of a shift, day or month row comes from the hour rows it is rolled up from."""

    KEY = "key"
    SUM = "sum"
    MAX = "max"
    MIN = "min"
    FIRST = "first"
    NONE = "none"  # the table is not rolled up


@dataclass(frozen=True)
class Column:
    name: str
    roll: Roll = Roll.NONE


def _cols(roll: Roll, names: tuple[str, ...]) -> tuple[Column, ...]:
    return tuple(Column(n, roll) for n in names)


def plain(*names: str) -> tuple[Column, ...]:
    return _cols(Roll.NONE, names)


def key(*names: str) -> tuple[Column, ...]:
    return _cols(Roll.KEY, names)


def summed(*names: str) -> tuple[Column, ...]:
    return _cols(Roll.SUM, names)


def largest(*names: str) -> tuple[Column, ...]:
    return _cols(Roll.MAX, names)


def smallest(*names: str) -> tuple[Column, ...]:
    return _cols(Roll.MIN, names)


def first(*names: str) -> tuple[Column, ...]:
    return _cols(Roll.FIRST, names)


@dataclass(frozen=True)
class Derived:
    """A column computed from the row's other columns (earlier derived ones included); NaN (stored NULL) where it
    is undefined."""

    name: str
    compute: Callable[[pd.DataFrame], pd.Series | np.ndarray]


def ratio(numerator: str, denominator: str) -> Callable[[pd.DataFrame], pd.Series]:
    """``numerator / denominator``, NULL where the denominator is not positive."""

    def compute(frame: pd.DataFrame) -> pd.Series:
        den = frame[denominator].astype(float)
        return (frame[numerator].astype(float) / den).where(den > 0)

    return compute


def derived(functions: dict[str, Callable[[pd.DataFrame], Any]]) -> tuple[Derived, ...]:
    """Derived columns from a module's own ``{name: function of the row}`` (``oee.RATIOS``, ``energy.DERIVED``)."""
    return tuple(Derived(name, f) for name, f in functions.items())


# Set by the roll-up itself, not grouped by.
ROLLUP_SETS = ("plant_id", "period")


@dataclass(frozen=True)
class ResultTable:
    name: str
    columns: tuple[Column, ...]
    # The ``CellResults`` field holding a cell's per-period frames for this table (None: not a per-cell table).
    # Per-cell tables are rolled up from their hour rows, so each of their columns needs a roll-up rule.
    cell_field: str | None = None
    derived: tuple[Derived, ...] = ()
    # Columns the database fills itself (defaults), never written by code.
    database_fills: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.cell_field is not None:
            missing = [c.name for c in self.columns if c.roll is Roll.NONE]
            if missing:
                raise ValueError(f"result table {self.name}: no roll-up rule for column(s) {', '.join(missing)}")

    @property
    def names(self) -> list[str]:
        """The stored columns' names, in order."""
        return [c.name for c in self.columns]

    @property
    def written(self) -> list[str]:
        """Every column a writer COPYs, in order: the stored ones, then the derived KPIs."""
        return [*self.names, *(d.name for d in self.derived)]

    @property
    def group_keys(self) -> list[str]:
        """What a roll-up groups hour rows by (after moving each to its shift, day or month)."""
        return [c.name for c in self.columns if c.roll is Roll.KEY and c.name not in ROLLUP_SETS]

    @property
    def aggregates(self) -> dict[str, str]:
        """Column → pandas aggregation of a roll-up; derived columns are recomputed from the result instead."""
        return {c.name: c.roll.value for c in self.columns if c.roll in (Roll.SUM, Roll.MAX, Roll.MIN, Roll.FIRST)}

    def complete(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with the derived columns computed from its other columns, in declaration order."""
        if frame.empty or not self.derived:
            return frame
        frame = frame.copy()  # once, not per column as assign would; the caller's frame stays as it was
        for d in self.derived:
            frame[d.name] = d.compute(frame)
        return frame

    def write(self, conn: psycopg.Connection, frame: pd.DataFrame, *, where: str, params: tuple[Any, ...]) -> int:
        """Replace the rows of ``where`` with ``frame`` (derived columns included); the caller commits."""
        return store.replace(conn, self.name, self.complete(frame), columns=self.written, where=where, params=params)


PERIOD_KEYS = ("plant_id", "cell_id", "period", "time", "time_end")
STATE_INTERVALS_TABLE = ResultTable("state_intervals", plain("plant_id", "cell_id", *INTERVAL_COLUMNS))
OEE_TABLE = ResultTable(
    "oee", (*key(*PERIOD_KEYS, "shift_name"), *summed(*SUM_COLUMNS), *first("ideal_cycle_time_s")),
    cell_field="oee", derived=derived(oee.RATIOS), database_fills=("computed_at",),
)
DOWNTIME_TABLE = ResultTable(
    "downtime", (*key(*PERIOD_KEYS, "state_code", "category", "reason", "time_element"),
                 *summed("stops", "duration_s", "microstops", "microstop_s")),
    cell_field="downtime",
)
ENERGY_TABLE = ResultTable(
    "energy", (*key(*PERIOD_KEYS, "shift_name"),
               *summed("kwh", "idle_kwh", *(f"kwh_{b}" for b in BANDS), "cost", *(f"cost_{b}" for b in BANDS),
                       "tce", "good_count"),
               *largest("peak_kw_15min"), *first("source")),
    cell_field="energy", database_fills=("computed_at",),
    derived=(*derived(energy.DERIVED), Derived("idle_share", ratio("idle_kwh", "kwh"))),
)
PDM_HEALTH_TABLE = ResultTable(
    "pdm_health", plain("plant_id", "cell_id", "signal_id", "time", "time_end", "value", "baseline_mean",
                        "baseline_sd", "ewma", "ewma_ucl", "ewma_lcl", "cusum_pos", "cusum_neg", "cusum_h", "we_rule",
                        "drift", "zone", "failure_threshold", "rul_p10_h", "rul_p50_h", "rul_p90_h"),
)
BASELINE_DAILY_TABLE = ResultTable(
    "energy_baseline_daily", plain("plant_id", "time", "time_end", "phase", "actual_kwh", "production",
                                   "ideal_production_h", "hdd", "cdd", "expected_kwh", "pi_low_kwh", "pi_high_kwh",
                                   "savings_kwh", "cusum_kwh"),
)
BASELINE_TABLE = ResultTable(
    "energy_baseline", plain("plant_id", "time", "time_end", "reporting_end", "formula", "params", "pvalues",
                             "n_days", "r2", "cv_rmse", "nmbe", "meets_ashrae14", "saving_fraction", "saving_kwh",
                             "saving_half_width", "saving_fsu", "saving_significant", "confidence"),
    database_fills=("computed_at",),
)

TABLES: dict[str, ResultTable] = {t.name: t for t in (
    STATE_INTERVALS_TABLE, OEE_TABLE, DOWNTIME_TABLE, ENERGY_TABLE, PDM_HEALTH_TABLE, BASELINE_DAILY_TABLE,
    BASELINE_TABLE,
)}
# The tables a cell's hour (and shift) results are written to, per period, in this order.
PER_CELL = tuple(t for t in TABLES.values() if t.cell_field is not None)

