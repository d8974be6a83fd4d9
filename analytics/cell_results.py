"""Hour and shift results of one cell from its raw samples: state intervals, OEE, downtime Pareto and energy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analytics import counters, energy, oee
from analytics.intervals import overlap
from analytics.states import CONTINUED, INTERVAL_COLUMNS, state_intervals
from datafactory.config.analytics import AnalyticsConfig
from datafactory.contract.meanings import Meaning

COUNT_MEANINGS = (Meaning.TOTAL_COUNT, Meaning.GOOD_COUNT, Meaning.REJECT_COUNT)
DOWNTIME_KEYS = ["time", "time_end", "state_code", "category", "reason", "time_element"]
DOWNTIME_SUMS = ["stops", "duration_s", "microstops", "microstop_s"]


@dataclass
class CellSamples:
    """One cell's raw samples by meaning (frames with ``time``, ``value``) and its attributes."""

    cell_id: int
    attributes: dict[str, Any]
    by_meaning: dict[Meaning, pd.DataFrame] = field(default_factory=dict)


@dataclass
class CellResults:
    intervals: pd.DataFrame | None = None
    oee: list[pd.DataFrame] = field(default_factory=list)
    downtime: list[pd.DataFrame] = field(default_factory=list)
    energy: list[pd.DataFrame] = field(default_factory=list)
    # A machine state but no ideal cycle time (neither ``ideal_cycle_time_s`` nor per-product times): no OEE rows.
    no_ideal_cycle_time: bool = False


@dataclass(frozen=True)
class Window:
    """What a run computes: hour and shift periods, the range intervals cover, and the tariff bands over it."""

    start: pd.Timestamp
    cover_end: pd.Timestamp
    periods: dict[str, pd.DataFrame]
    bands: pd.DataFrame


def downtime(intervals: pd.DataFrame, periods: pd.DataFrame) -> pd.DataFrame:
    """Loss time inside planned busy time (and microstops) per period and raw code: the Pareto."""
    losses = intervals[intervals["time_element"].isin(["adot", "asut", "adet"]) | intervals["microstop"]]
    losses = losses.reset_index(drop=True)
    ov = overlap(losses, periods.reset_index(drop=True))
    if ov.empty:
        return pd.DataFrame(columns=DOWNTIME_KEYS + DOWNTIME_SUMS)
    iv = losses.iloc[ov["ia"]].reset_index(drop=True)
    starts = ov["start"].to_numpy() == iv["time"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    fresh = starts & ~iv[CONTINUED].to_numpy(dtype=bool)
    micro = iv["microstop"].to_numpy(dtype=bool)
    frame = pd.DataFrame({
        "time": periods["time"].array[ov["ib"]], "time_end": periods["time_end"].array[ov["ib"]],
        "state_code": iv["state_code"].astype(int), "category": iv["category"], "reason": iv["reason"],
        "time_element": iv["time_element"], "stops": fresh.astype(int), "duration_s": ov["seconds"],
        "microstops": (fresh & micro).astype(int), "microstop_s": ov["seconds"] * micro,
    })
    return frame.groupby(DOWNTIME_KEYS, as_index=False)[DOWNTIME_SUMS].sum()


def energy_segments(samples: CellSamples, end: pd.Timestamp) -> tuple[pd.DataFrame | None, str]:
    """Energy segments from the cumulative meter when there is one, else from integrated power."""
    meter = samples.by_meaning.get(Meaning.ENERGY_KWH)
    if meter is not None and len(meter) >= 2:
        return energy.meter_segments(meter), "meter"
    power = samples.by_meaning.get(Meaning.POWER_KW)
    if power is not None and len(power) >= 1:
        return energy.power_segments(power, end), "power"
    return None, ""


def product_cycle_times(samples: CellSamples) -> pd.DataFrame | None:
    """Step function of the ideal cycle time of the product being made, from the ``product`` signal and the cell
    attribute ``ideal_cycle_time_by_product`` (product code → seconds); None when either is missing."""
    table = samples.attributes.get("ideal_cycle_time_by_product") or {}
    product = samples.by_meaning.get(Meaning.PRODUCT)
    if not table or product is None or product.empty:
        return None
    codes = product["value"].round().astype("Int64").astype(str)
    seconds = codes.map({str(k): float(v) for k, v in table.items()}).astype(float)
    return pd.DataFrame({"time": product["time"].to_numpy(), "ideal_cycle_time_s": seconds.to_numpy()})


def cell_results(samples: CellSamples, window: Window, cfg: AnalyticsConfig) -> CellResults:
    out = CellResults()
    intervals = pd.DataFrame(columns=[*INTERVAL_COLUMNS, CONTINUED])
    incs = {m.value: counters.increments(samples.by_meaning[m]) for m in COUNT_MEANINGS if m in samples.by_meaning}
    state = samples.by_meaning.get(Meaning.MACHINE_STATE)
    if state is not None:
        intervals = state_intervals(state, window.start, window.cover_end, cfg)
        out.intervals = intervals
        ict = samples.attributes.get("ideal_cycle_time_s")
        steps = product_cycle_times(samples)
        # ISO 22400-2 performance = ideal production time / APT: without an ideal cycle time there is no P and no
        # OEE, and the schema's summable ideal_production_s (NOT NULL, summed by the line and plant views) cannot
        # hold "unknown". The machine's OEE rows are left out (the run reports it); its state intervals and
        # downtime — the availability losses — are still written.
        out.no_ideal_cycle_time = not ict and steps is None
        for name, per in window.periods.items():
            if per.empty:
                continue
            if not out.no_ideal_cycle_time:
                rows = oee.machine_oee(intervals, per, incs, float(ict) if ict else None, steps)
                out.oee.append(rows.assign(period=name))
            out.downtime.append(downtime(intervals, per).assign(period=name))
    good = incs.get("good_count", incs.get("total_count"))
    segments, source = energy_segments(samples, window.cover_end)
    if segments is not None:
        for name, per in window.periods.items():
            if per.empty:
                continue
            rows = energy.cell_energy(segments, per, intervals=intervals, bands=window.bands, tariff=cfg.tariff,
                                      kgce_per_kwh=cfg.kgce_per_kwh, good=good)
            out.energy.append(rows.assign(period=name, source=source))
    return out
