"""Increments of cumulative counters (unit counters, energy meters), with resets and rollovers handled.

A drop in a cumulative counter is either a **rollover** (the register wrapped at its modulus: the previous value was
near a power of ten, or an explicit ``modulus``, and the new value is near zero) — the increment is
``modulus − previous + value`` (without an explicit modulus the candidates are 2¹⁶, 2³², 10⁴ … 10¹²:
register widths and meter display widths) — or a **reset** (the PLC restarted counting from zero) — the
increment is ``value``.
Each increment is attributed to the time of the sample that shows it, i.e. the period in which it happened.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ROLLOVER_NEAR = 0.9  # the previous value must be within the top 10 % of the modulus to call a drop a rollover
MODULI = np.array(sorted([2.0**16, 2.0**32, *[10.0**n for n in range(4, 13)]]))


def increments(samples: pd.DataFrame, *, modulus: float | None = None) -> pd.DataFrame:
    """``time``, ``prev_time``, ``increment`` between consecutive good samples (NaN values are skipped)."""
    s = samples[samples["value"].notna()].sort_values("time", kind="stable")
    values = s["value"].to_numpy(dtype=float)
    times = s["time"]
    if len(values) < 2:
        return pd.DataFrame({"time": times.iloc[:0], "prev_time": times.iloc[:0], "increment": np.array([], float)})
    prev, cur = values[:-1], values[1:]
    inc = cur - prev
    drop = inc < 0
    if drop.any():
        if modulus:
            mod = np.full_like(prev, modulus)
        else:
            mod = MODULI[np.clip(np.searchsorted(MODULI, prev, side="right"), 0, len(MODULI) - 1)]
        rollover = drop & (prev >= ROLLOVER_NEAR * mod) & (cur < (1 - ROLLOVER_NEAR) * mod)
        inc = np.where(rollover, mod - prev + cur, inc)
        inc = np.where(drop & ~rollover, cur, inc)
    return pd.DataFrame({"time": times.iloc[1:].reset_index(drop=True),
                         "prev_time": times.iloc[:-1].reset_index(drop=True), "increment": inc})


def sum_by_period(incs: pd.DataFrame, periods: pd.DataFrame) -> np.ndarray:
    """Sum of increments whose time falls in each period [time, time_end)."""
    out = np.zeros(len(periods))
    if incs.empty or periods.empty:
        return out
    t = incs["time"].to_numpy(dtype="datetime64[ns]")
    p0 = periods["time"].to_numpy(dtype="datetime64[ns]")
    p1 = periods["time_end"].to_numpy(dtype="datetime64[ns]")
    idx = np.searchsorted(p0, t, side="right") - 1
    ok = (idx >= 0) & (t < p1[np.clip(idx, 0, None)])
    np.add.at(out, idx[ok], incs["increment"].to_numpy()[ok])
    return out
