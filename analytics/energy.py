"""Energy per cell and period: kWh from cumulative meters or integrated power, idle waste, time-of-use cost,
peak 15-minute demand, load factor, tonnes of coal equivalent and specific energy consumption per good unit.

Energy is first turned into *segments* (``time``, ``time_end``, ``kwh``): a meter increment is spread evenly over
the interval between the two readings; a power sample is held until the next one (at most ``max_hold_s``). Segments
are then split by state intervals, tariff bands, quarter hours and periods with ``intervals.overlap``, each piece
taking its share of energy in proportion to time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from analytics.counters import increments, sum_by_period
from analytics.intervals import overlap, to_utc
from analytics.tariff import BANDS, price_of
from datafactory.config.analytics import Tariff

QUARTER = pd.Timedelta(minutes=15)


def meter_segments(samples: pd.DataFrame, *, modulus: float | None = None) -> pd.DataFrame:
    inc = increments(samples, modulus=modulus)
    return pd.DataFrame({"time": inc["prev_time"], "time_end": inc["time"], "kwh": inc["increment"]})


def power_segments(samples: pd.DataFrame, end: pd.Timestamp, *, max_hold_s: float = 900) -> pd.DataFrame:
    """Integrate kW samples (held until the next sample, at most ``max_hold_s``, never past ``end``)."""
    s = samples[samples["value"].notna()].sort_values("time")
    t0 = s["time"]
    t1 = t0.shift(-1).fillna(end).clip(upper=t0 + pd.Timedelta(seconds=max_hold_s))
    seconds = (t1 - t0).dt.total_seconds()
    out = pd.DataFrame({"time": t0, "time_end": t1, "kwh": s["value"] * seconds / 3600.0})
    return out[seconds > 0].reset_index(drop=True)


def split(pieces: pd.DataFrame, by: pd.DataFrame, carry: list[str]) -> pd.DataFrame:
    """Cut energy pieces at the boundaries of ``by``, carrying ``by``'s ``carry`` columns; energy ∝ time."""
    ov = overlap(pieces, by)
    dur = (pieces["time_end"] - pieces["time"]).dt.total_seconds().to_numpy()
    share = ov["seconds"].to_numpy() / np.where(dur > 0, dur, 1.0)[ov["ia"]]
    out = pd.DataFrame({"time": to_utc(ov["start"]), "time_end": to_utc(ov["end"]),
                        "kwh": pieces["kwh"].to_numpy()[ov["ia"]] * share})
    for col in carry:
        out[col] = by[col].to_numpy()[ov["ib"]]
    for col in pieces.columns.difference(["time", "time_end", "kwh"]):
        out[col] = pieces[col].to_numpy()[ov["ia"]]
    return out


def quarter_grid(start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    edges = pd.date_range(start.floor(QUARTER), end.ceil(QUARTER), freq=QUARTER)
    return pd.DataFrame({"time": edges[:-1], "time_end": edges[1:]})


def _ns(col: pd.Series) -> np.ndarray:
    return col.to_numpy(dtype="datetime64[ns]").astype(np.int64)


def _seconds(ns: np.ndarray) -> np.ndarray:
    """Nanoseconds as seconds, rounded exactly as pandas' ``Timedelta.total_seconds`` (whole part + fraction)."""
    whole, residual = np.divmod(ns, 1_000_000_000)
    return whole + residual / 1e9


def _cut(t0: np.ndarray, t1: np.ndarray, kwh: np.ndarray, b0: np.ndarray, b1: np.ndarray,
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``split`` on plain arrays (ns times): the pieces' and ``by``'s indices, start, end and kWh of every cut."""
    first = np.searchsorted(b1, t0, side="right")
    last = np.searchsorted(b0, t1, side="left")
    n = np.maximum(last - first, 0)
    ia = np.repeat(np.arange(len(t0)), n)
    ib = np.repeat(first, n) + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    start, end = np.maximum(t0[ia], b0[ib]), np.minimum(t1[ia], b1[ib])
    keep = end > start
    ia, ib, start, end = ia[keep], ib[keep], start[keep], end[keep]
    dur = _seconds(t1 - t0)
    share = ((end - start) / 1e9) / np.where(dur > 0, dur, 1.0)[ia]
    return ia, ib, start, end, kwh[ia] * share


def cell_energy(
    segments: pd.DataFrame,
    periods: pd.DataFrame,
    *,
    intervals: pd.DataFrame,
    bands: pd.DataFrame,
    tariff: Tariff,
    kgce_per_kwh: float,
    good: pd.DataFrame | None,
) -> pd.DataFrame:
    """Energy rows of one cell per period (``periods``: ``time``, ``time_end``, ``shift_name``).

    The cuts are ``split`` on plain arrays (the same arithmetic in the same order, so the same figures): building a
    frame per cut cost more than the cut itself, many times per cell and run."""
    per = periods.reset_index(drop=True)
    n = len(per)
    p0, p1 = _ns(per["time"]), _ns(per["time_end"])
    out: dict[str, Any] = {"time": per["time"], "time_end": per["time_end"], "shift_name": per["shift_name"],
                           "kwh": np.zeros(n), **{f"kwh_{band}": np.zeros(n) for band in BANDS},
                           "idle_kwh": np.zeros(n), "peak_kw_15min": np.full(n, np.nan)}
    if not segments.empty and n:
        lo, hi = per["time"].min(), per["time_end"].max()
        segs = segments[(segments["time_end"] > lo) & (segments["time"] < hi)]
        _, pidx, t0, t1, kwh = _cut(_ns(segs["time"]), _ns(segs["time_end"]), segs["kwh"].to_numpy(dtype=float),
                                    p0, p1)
        out["kwh"] = np.bincount(pidx, weights=kwh, minlength=n)
        ia, ib, _, _, part = _cut(t0, t1, kwh, _ns(bands["time"]), _ns(bands["time_end"]))
        band_of = bands["band"].to_numpy()[ib]
        for band in BANDS:
            sel = band_of == band
            out[f"kwh_{band}"] = np.bincount(pidx[ia][sel], weights=part[sel], minlength=n)
        if not intervals.empty:
            ia, ib, _, _, part = _cut(t0, t1, kwh, _ns(intervals["time"]), _ns(intervals["time_end"]))
            idle = intervals["time_element"].to_numpy()[ib] != "apt"
            out["idle_kwh"] = np.bincount(pidx[ia][idle], weights=part[idle], minlength=n)
        grid = quarter_grid(lo, hi)
        q0 = _ns(grid["time"])
        ia, ib, _, _, part = _cut(t0, t1, kwh, q0, _ns(grid["time_end"]))
        quarters = pd.DataFrame({"pidx": pidx[ia], "q": q0[ib], "kwh": part})
        per_q = quarters.groupby(["pidx", "q"], as_index=False)["kwh"].sum()
        peak = per_q.groupby("pidx")["kwh"].max() * 4.0  # kWh in 15 min × 4 = average kW
        out["peak_kw_15min"][peak.index.to_numpy()] = peak.to_numpy()
    cost = np.zeros(n)
    out["cost"] = cost  # placed before the per-band costs (the column order of the stored rows); summed below
    for band in BANDS:
        out[f"cost_{band}"] = out[f"kwh_{band}"] * price_of(tariff, band)
        cost = cost + out[f"cost_{band}"]
    out["cost"] = cost
    out["tce"] = out["kwh"] * kgce_per_kwh / 1000.0
    out["good_count"] = sum_by_period(good, per) if good is not None else np.zeros(n)
    frame = pd.DataFrame(out)
    for name, compute in DERIVED.items():  # in order: load_factor needs avg_kw
        frame[name] = compute(frame)
    return frame


def _per_hour(frame: pd.DataFrame) -> pd.Series:
    hours = (frame["time_end"] - frame["time"]).dt.total_seconds() / 3600.0
    return frame["kwh"] / hours.where(hours > 0)


# Columns that are functions of a row's other columns, so a shift, day or month row gets them from its summed kWh
# and counts and its largest peak (``analytics.tables`` declares them as the derived columns of ``energy``).
DERIVED: dict[str, Callable[[pd.DataFrame], pd.Series]] = {
    "avg_kw": _per_hour,
    "load_factor": lambda f: f["avg_kw"] / f["peak_kw_15min"].where(f["peak_kw_15min"] > 0),
    "sec_kwh_per_unit": lambda f: f["kwh"] / f["good_count"].where(f["good_count"] > 0),
}


def finish(out: pd.DataFrame, tariff: Tariff, kgce_per_kwh: float, good: np.ndarray) -> pd.DataFrame:
    """Cost, tce, averages and ratios from the additive columns."""
    out["cost"] = 0.0
    for band in BANDS:
        out[f"cost_{band}"] = out[f"kwh_{band}"] * price_of(tariff, band)
        out["cost"] += out[f"cost_{band}"]
    out["tce"] = out["kwh"] * kgce_per_kwh / 1000.0
    out["good_count"] = good
    for name, compute in DERIVED.items():  # in order: load_factor needs avg_kw
        out[name] = compute(out)
    return out
