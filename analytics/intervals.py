"""Overlap of two sets of time intervals — the one primitive every time-weighted figure is built on.

Both inputs are frames with ``time`` and ``time_end`` columns, each sorted by ``time`` and non-overlapping within
itself (state intervals, periods, tariff bands, energy segments). The result pairs every interval of ``a`` with every
interval of ``b`` it overlaps, vectorised with ``searchsorted`` rather than a cross join.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _ns(col: pd.Series) -> np.ndarray:
    return col.to_numpy(dtype="datetime64[ns]").astype(np.int64)


def overlap(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Rows ``ia``, ``ib`` (positional indices), ``start``, ``end`` (ns) and ``seconds`` of each overlapping pair."""
    if a.empty or b.empty:
        return pd.DataFrame({"ia": [], "ib": [], "start": [], "end": [], "seconds": []}).astype(
            {"ia": np.int64, "ib": np.int64, "start": np.int64, "end": np.int64, "seconds": float}
        )
    a0, a1 = _ns(a["time"]), _ns(a["time_end"])
    b0, b1 = _ns(b["time"]), _ns(b["time_end"])
    first = np.searchsorted(b1, a0, side="right")  # first b ending after a starts
    last = np.searchsorted(b0, a1, side="left")  # b starting before a ends
    n = np.maximum(last - first, 0)
    ia = np.repeat(np.arange(len(a)), n)
    offsets = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    ib = np.repeat(first, n) + offsets
    start = np.maximum(a0[ia], b0[ib])
    end = np.minimum(a1[ia], b1[ib])
    keep = end > start
    out = pd.DataFrame({"ia": ia[keep], "ib": ib[keep], "start": start[keep], "end": end[keep]})
    out["seconds"] = (out["end"] - out["start"]) / 1e9
    return out


def clip(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Intervals cut to [start, end); those outside are dropped."""
    out = frame[(frame["time_end"] > start) & (frame["time"] < end)].copy()
    out["time"] = out["time"].where(out["time"] > start, start)
    out["time_end"] = out["time_end"].where(out["time_end"] < end, end)
    return out.reset_index(drop=True)


def to_utc(values: np.ndarray | pd.Series) -> pd.Series:
    """int64 ns since the epoch → tz-aware UTC timestamps."""
    return pd.Series(pd.to_datetime(np.asarray(values, dtype=np.int64), unit="ns", utc=True))
