"""Energy per cell and period: kWh from cumulative meters or integrated power, idle waste, time-of-use cost,
peak 15-minute demand, load factor, tonnes of coal equivalent and specific energy consumption per good unit.

Energy is first turned into *segments* (``time``, ``time_end``, ``kwh``): a meter increment is spread evenly over
the interval between the two readings; a power sample is held until the next one (at most ``max_hold_s``). Segments
are then split by state intervals, tariff bands, quarter hours and periods with ``intervals.overlap``, each piece
taking its share of energy in proportion to time.
"""

from __future__ import annotations

from collections.abc import Callable

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
    """Energy rows of one cell per period (``periods``: ``time``, ``time_end``, ``shift_name``)."""
    out = periods[["time", "time_end", "shift_name"]].reset_index(drop=True).copy()
    n = len(out)
    out["kwh"] = 0.0
    for band in BANDS:
        out[f"kwh_{band}"] = 0.0
    out["idle_kwh"] = 0.0
    out["peak_kw_15min"] = np.nan
    if not segments.empty and n:
        lo, hi = out["time"].min(), out["time_end"].max()
        segs = segments[(segments["time_end"] > lo) & (segments["time"] < hi)].reset_index(drop=True)
        pieces = split(segs, out.assign(pidx=np.arange(n)), ["pidx"])
        out["kwh"] = np.bincount(pieces["pidx"], weights=pieces["kwh"], minlength=n)
        by_band = split(pieces, bands.reset_index(drop=True), ["band"])
        for band in BANDS:
            sel = by_band["band"] == band
            out[f"kwh_{band}"] = np.bincount(by_band["pidx"][sel], weights=by_band["kwh"][sel], minlength=n)
        if not intervals.empty:
            by_state = split(pieces, intervals.reset_index(drop=True), ["time_element"])
            idle = by_state["time_element"] != "apt"
            out["idle_kwh"] = np.bincount(by_state["pidx"][idle], weights=by_state["kwh"][idle], minlength=n)
        quarters = split(pieces, quarter_grid(lo, hi).assign(q=lambda f: f["time"]), ["q"])
        per_q = quarters.groupby(["pidx", "q"], as_index=False)["kwh"].sum()
        peak = per_q.groupby("pidx")["kwh"].max() * 4.0  # kWh in 15 min × 4 = average kW
        out.loc[peak.index, "peak_kw_15min"] = peak.to_numpy()
    return finish(out, tariff, kgce_per_kwh, sum_by_period(good, out) if good is not None else np.zeros(n))


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
