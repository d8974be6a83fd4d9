"""Machine state samples → state intervals in the ISO 22400-2 time model and the six big losses.

Input: the ``machine_state`` samples of one cell (``time``, ``value``; NaN = bad quality / no data), including the
last sample before the window so the state at its start is known. Output: one row per contiguous state.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from datafactory.config.analytics import AnalyticsConfig, MicrostopConvention, StateCategory

TIME_ELEMENT: dict[StateCategory, str] = {
    StateCategory.RUNNING: "apt",
    StateCategory.REDUCED_SPEED: "apt",
    StateCategory.STARVED: "adet",
    StateCategory.BLOCKED: "adet",
    StateCategory.SETUP: "asut",
    StateCategory.UNPLANNED_STOP: "adot",
    StateCategory.PLANNED_BREAK: "pdot",
    StateCategory.PLANNED_NO_ORDER: "pdot",
    StateCategory.PLANNED_MAINTENANCE: "pdot",
    StateCategory.NO_SHIFT: "pdot",
    StateCategory.UNKNOWN: "unknown",
}

LOSS: dict[StateCategory, str] = {
    StateCategory.RUNNING: "none",
    StateCategory.REDUCED_SPEED: "reduced_speed",
    StateCategory.STARVED: "idling",
    StateCategory.BLOCKED: "idling",
    StateCategory.SETUP: "setup_adjustment",
    StateCategory.UNPLANNED_STOP: "breakdown",
    StateCategory.PLANNED_BREAK: "planned",
    StateCategory.PLANNED_NO_ORDER: "planned",
    StateCategory.PLANNED_MAINTENANCE: "planned",
    StateCategory.NO_SHIFT: "planned",
    StateCategory.UNKNOWN: "unknown",
}

INTERVAL_COLUMNS = ["time", "time_end", "state_code", "category", "reason", "time_element", "loss", "microstop",
                    "duration_s"]
# In frames only (not stored): the interval began before the computed range, so it is not a new stop there.
CONTINUED = "continued"


def state_intervals(
    samples: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, config: AnalyticsConfig
) -> pd.DataFrame:
    """State intervals covering exactly [start, end).

    Samples after ``end`` may be passed: they let a stop that continues past the window be classified by its full
    length (a microstop is decided on the whole stop, not on the part inside the window). Time before the first
    sample, and after a bad-quality sample, is ``unknown``; a code missing from the config is ``unknown`` too.
    """
    s = samples.sort_values("time", kind="stable")
    times = s["time"].to_numpy(dtype="datetime64[ns]")
    codes = s["value"].to_numpy(dtype=float)
    if len(times):
        # Collapse repeats: a new interval starts only where the code changes (NaN ≠ NaN handled explicitly).
        prev = np.concatenate([[np.nan], codes[:-1]])
        changed = ~((codes == prev) | (np.isnan(codes) & np.isnan(prev)))
        changed[0] = True
        times, codes = times[changed], codes[changed]
    stop = max(end, pd.Timestamp(times[-1]).tz_localize("UTC")) if len(times) else end
    lead_time = np.array([start.to_datetime64()], dtype="datetime64[ns]")
    if len(times) == 0 or times[0] > lead_time[0]:
        times = np.concatenate([lead_time, times])
        codes = np.concatenate([[np.nan], codes])
    ends = np.concatenate([times[1:], np.array([stop.to_datetime64()], dtype="datetime64[ns]")])
    keep = ends > times
    return _classified(times[keep].astype(np.int64), ends[keep].astype(np.int64), codes[keep], config=config,
                       start=start, end=end)


def classify(frame: pd.DataFrame, config: AnalyticsConfig, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Map codes (column ``code``) of full-length intervals to the taxonomy, then clip to [start, end)."""
    return _classified(frame["time"].to_numpy(dtype="datetime64[ns]").astype(np.int64),
                       frame["time_end"].to_numpy(dtype="datetime64[ns]").astype(np.int64),
                       frame["code"].to_numpy(dtype=float), config=config, start=start, end=end)


def _seconds(ns: np.ndarray) -> np.ndarray:
    """Nanoseconds as seconds, rounded exactly as pandas' ``Timedelta.total_seconds`` (whole part + fraction)."""
    whole, residual = np.divmod(ns, 1_000_000_000)
    return whole + residual / 1e9


def _classified(t0: np.ndarray, t1: np.ndarray, codes: np.ndarray, *, config: AnalyticsConfig, start: pd.Timestamp,
                end: pd.Timestamp) -> pd.DataFrame:
    """``classify`` on plain arrays (ns times): a few dict look-ups per interval and one frame at the end, where
    pandas maps and clips cost more than the work itself on the few dozen intervals of a cell's hour."""
    by_code = {sc.code: sc for sc in config.state_codes}
    known = ~np.isnan(codes)
    unknown = StateCategory.UNKNOWN.value
    ints = [int(v) for v in np.round(codes[known]).astype(np.int64)]
    cat = np.full(len(codes), unknown, dtype=object)
    reason = np.full(len(codes), "no data", dtype=object)
    cat[known] = [by_code[c].category.value if c in by_code else unknown for c in ints]
    reason[known] = [by_code[c].reason if c in by_code else "unmapped code" for c in ints]
    elements = {k.value: v for k, v in TIME_ELEMENT.items()}
    losses = {k.value: v for k, v in LOSS.items()}
    element = np.array([elements[c] for c in cat], dtype=object)
    loss = np.array([losses[c] for c in cat], dtype=object)
    micro = (cat == StateCategory.UNPLANNED_STOP.value) & (_seconds(t1 - t0) < config.microstop_threshold_s)
    loss[micro] = "minor_stop"
    if config.microstops is MicrostopConvention.PERFORMANCE:
        element[micro] = "apt"
    lo, hi = start.as_unit("ns").value, end.as_unit("ns").value
    continued = t0 < lo
    inside = (t1 > lo) & (t0 < hi)
    c0, c1 = np.maximum(t0[inside], lo), np.minimum(t1[inside], hi)
    code = pd.Series(np.where(known, codes, np.nan)[inside])
    return pd.DataFrame({
        "time": pd.to_datetime(c0, unit="ns", utc=True), "time_end": pd.to_datetime(c1, unit="ns", utc=True),
        "state_code": code.astype("Int64") if known.any() else pd.array([pd.NA] * len(code), "Int64"),
        # The dtypes the pandas version had: category and reason object, element and loss inferred strings.
        "category": pd.Series(cat[inside], dtype=object), "reason": pd.Series(reason[inside], dtype=object),
        "time_element": element[inside], "loss": loss[inside],
        "microstop": micro[inside], "duration_s": _seconds(c1 - c0), CONTINUED: continued[inside],
    })
