"""Machine state samples → state intervals in the ISO 22400-2 time model and the six big losses.

Input: the ``machine_state`` samples of one cell (``time``, ``value``; NaN = bad quality / no data), including the
last sample before the window so the state at its start is known. Output: one row per contiguous state.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analytics.intervals import clip
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
    frame = pd.DataFrame({"time": pd.to_datetime(times, utc=True), "time_end": pd.to_datetime(ends, utc=True),
                          "code": codes})
    frame = frame[frame["time_end"] > frame["time"]]
    return classify(frame, config, start, end)


def classify(frame: pd.DataFrame, config: AnalyticsConfig, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Map codes (column ``code``) of full-length intervals to the taxonomy, then clip to [start, end)."""
    by_code = {sc.code: sc for sc in config.state_codes}
    code = frame["code"]
    known = code.notna()
    cat = pd.Series(StateCategory.UNKNOWN.value, index=frame.index, dtype=object)
    reason = pd.Series("no data", index=frame.index, dtype=object)
    cats = {c: by_code[c].category.value for c in by_code}
    reasons = {c: by_code[c].reason for c in by_code}
    ints = code[known].round().astype(np.int64)
    cat[known] = ints.map(cats).fillna(StateCategory.UNKNOWN.value)
    reason[known] = ints.map(reasons).fillna("unmapped code")
    element = cat.map({k.value: v for k, v in TIME_ELEMENT.items()})
    loss = cat.map({k.value: v for k, v in LOSS.items()})
    full_s = (frame["time_end"] - frame["time"]).dt.total_seconds()
    micro = (cat == StateCategory.UNPLANNED_STOP.value) & (full_s < config.microstop_threshold_s)
    loss = loss.where(~micro, "minor_stop")
    if config.microstops is MicrostopConvention.PERFORMANCE:
        element = element.where(~micro, "apt")
    out = pd.DataFrame({
        "time": frame["time"], "time_end": frame["time_end"],
        "state_code": code.where(known).astype("Int64") if known.any() else pd.array([pd.NA] * len(frame), "Int64"),
        "category": cat, "reason": reason, "time_element": element, "loss": loss, "microstop": micro,
        CONTINUED: frame["time"] < start,
    })
    out = clip(out, start, end)
    out["duration_s"] = (out["time_end"] - out["time"]).dt.total_seconds()
    return out[[*INTERVAL_COLUMNS, CONTINUED]]
