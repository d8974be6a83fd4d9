"""OEE in the ISO 22400-2 time model, per machine and period, and roll-ups that sum time elements.

Time elements (seconds): planned busy time PBT = APT + ADET + ASUT + ADOT; planned downtime (PDOT) and time
without data are outside PBT. Availability = APT/PBT, performance = ideal production time / APT where ideal
production time = Σ ideal cycle time × units, quality = good/total, OEE = A·P·Q; NEE = APT/(PBT − ADET)·P·Q (net of
external delays); TEEP = OEE · PBT / calendar time. OEE, NEE and TEEP are computed as the ideal time of the good
units over PBT, PBT − ADET and calendar time (the same products), so a period with planned busy time and nothing
good has OEE 0 even where Q (nothing produced) or P (no operating time) is undefined. Roll-ups (line, plant, day,
month) sum the elements and the counts and recompute the ratios — never the mean of percentages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from analytics.counters import sum_by_period

ELEMENTS = ("apt", "adet", "asut", "adot", "pdot", "unknown")
SUM_COLUMNS = [
    "calendar_s", "planned_down_s", "pbt_s", "apt_s", "adet_s", "asut_s", "adot_s", "unknown_s", "microstop_s",
    "microstop_count", "stop_count", "changeover_count", "total_count", "good_count", "reject_count",
    "ideal_production_s",
]


def _div(a: pd.Series | np.ndarray, b: pd.Series | np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)


def _good_ideal(frame: pd.DataFrame) -> np.ndarray:
    # A·P·Q = ideal production time of the good units / PBT, which stays defined when nothing was produced (Q
    # undefined) or the machine never ran (P undefined): planned busy time with nothing good is an OEE of 0.
    return np.where(np.asarray(frame["good_count"], dtype=float) > 0,
                    _div(frame["ideal_production_s"], frame["total_count"]) * frame["good_count"], 0.0)


# Each ratio column as a function of a row's sums: the same for an hour and for a shift, day or month summed from
# hours (``analytics.tables`` declares them as the derived columns of ``oee``).
RATIOS: dict[str, Callable[[pd.DataFrame], np.ndarray]] = {
    "availability": lambda f: _div(f["apt_s"], f["pbt_s"]),
    "performance": lambda f: _div(f["ideal_production_s"], f["apt_s"]),
    "quality": lambda f: _div(f["good_count"], f["total_count"]),
    "oee": lambda f: _div(_good_ideal(f), f["pbt_s"]),
    "nee": lambda f: _div(_good_ideal(f), f["pbt_s"] - f["adet_s"]),
    "teep": lambda f: _div(_good_ideal(f), f["calendar_s"]),
    "mtbf_s": lambda f: _div(f["apt_s"], f["stop_count"]),
    "mttr_s": lambda f: _div(f["adot_s"] - f["microstop_s"], f["stop_count"]),
}
RATIO_COLUMNS = list(RATIOS)


def ratios(frame: pd.DataFrame) -> pd.DataFrame:
    """Add the ratio columns computed from the summed time elements and counts (in place, returned)."""
    for name, compute in RATIOS.items():
        frame[name] = compute(frame)
    return frame


def oee_textbook(planned_s: float, down_s: float, ideal_cycle_s: float, total: float, good: float) -> dict[str, float]:
    """A, P, Q, OEE from the classic inputs (planned production time, down time, counts) — the same formulas."""
    frame = pd.DataFrame({"calendar_s": [planned_s], "pbt_s": [planned_s], "apt_s": [planned_s - down_s],
                          "adet_s": [0.0], "adot_s": [down_s], "microstop_s": [0.0], "stop_count": [0],
                          "ideal_production_s": [ideal_cycle_s * total], "good_count": [good], "total_count": [total]})
    row = ratios(frame).iloc[0]
    return {k: float(row[k]) for k in ("availability", "performance", "quality", "oee")}


def machine_oee(
    intervals: pd.DataFrame,
    periods: pd.DataFrame,
    counts: dict[str, pd.DataFrame],
    ideal_cycle_time_s: float | None,
    product_cycle_times: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """OEE rows of one machine for each period.

    ``intervals``: state intervals (``analytics.states``) with a boolean ``continued`` column marking intervals that
    began before the computed range (they are not counted as a new stop). ``counts``: increments
    (``analytics.counters.increments``) by meaning ``total_count`` / ``good_count`` / ``reject_count``; missing ones are
    derived (total = good + reject). ``product_cycle_times``: optional step function ``time``, ``ideal_cycle_time_s``
    (the cycle time of the product running from that time), which takes precedence over the machine's.
    """
    # Built as plain arrays and turned into one frame at the end: a column assignment per figure cost more than the
    # figure itself, for every cell and period kind of every run. Same arithmetic, same column order.
    per = periods.reset_index(drop=True)
    n = len(per)
    p0, p1 = _ns(per["time"]), _ns(per["time_end"])
    cols: dict[str, Any] = {"time": per["time"], "time_end": per["time_end"], "shift_name": per["shift_name"],
                            "calendar_s": _seconds(p1 - p0)}
    ia, ib, ov_start, seconds = _overlap(_ns(intervals["time"]), _ns(intervals["time_end"]), p0, p1)
    elem = intervals["time_element"].to_numpy()[ia]
    for e in ELEMENTS:
        name = "planned_down_s" if e == "pdot" else f"{e}_s"
        cols[name] = np.bincount(ib[elem == e], weights=seconds[elem == e], minlength=n)[:n]
    micro = intervals["microstop"].to_numpy(dtype=bool)[ia]
    cols["microstop_s"] = np.bincount(ib[micro], weights=seconds[micro], minlength=n)[:n]
    # Event counts: attribute each stop to the period containing its start (the overlap starting at the interval's own
    # start); intervals continued from before the range are not new events.
    starts = ov_start == _ns(intervals["time"])[ia]
    continued = intervals["continued"].to_numpy(dtype=bool) if "continued" in intervals else np.zeros(len(intervals),
                                                                                                        dtype=bool)
    fresh = starts & ~continued[ia]
    cat = intervals["category"].to_numpy()[ia]
    is_stop = (cat == "unplanned_stop") & fresh
    cols["microstop_count"] = np.bincount(ib[is_stop & micro], minlength=n)[:n]
    cols["stop_count"] = np.bincount(ib[is_stop & ~micro], minlength=n)[:n]
    cols["changeover_count"] = np.bincount(ib[(cat == "setup") & fresh], minlength=n)[:n]
    cols["pbt_s"] = cols["apt_s"] + cols["adet_s"] + cols["asut_s"] + cols["adot_s"]

    total, good, reject = (counts.get(k) for k in ("total_count", "good_count", "reject_count"))
    zero = np.zeros(n)
    gd_raw = sum_by_period(good, per) if good is not None else None
    rj_raw = sum_by_period(reject, per) if reject is not None else None
    # Missing counters are derived from the others: total = good + reject.
    if total is not None:
        tot = sum_by_period(total, per)
    else:
        tot = (gd_raw if gd_raw is not None else zero) + (rj_raw if rj_raw is not None else zero)
    gd = gd_raw if gd_raw is not None else tot - (rj_raw if rj_raw is not None else zero)
    rj = rj_raw if rj_raw is not None else tot - gd
    cols["total_count"], cols["good_count"], cols["reject_count"] = tot, gd, rj
    cols["ideal_cycle_time_s"] = np.full(n, ideal_cycle_time_s, dtype=object if ideal_cycle_time_s is None else float)
    cols["ideal_production_s"] = _ideal_production(total, per, ideal_cycle_time_s, product_cycle_times, tot)
    for name, compute in RATIOS.items():
        cols[name] = compute(cols)  # type: ignore[arg-type]  # the ratios only index columns: arrays do
    return pd.DataFrame(cols)


def _ns(col: pd.Series) -> np.ndarray:
    return col.to_numpy(dtype="datetime64[ns]").astype(np.int64)


def _seconds(ns: np.ndarray) -> np.ndarray:
    """Nanoseconds as seconds, rounded exactly as pandas' ``Timedelta.total_seconds`` (whole part + fraction)."""
    whole, residual = np.divmod(ns, 1_000_000_000)
    return whole + residual / 1e9


def _overlap(a0: np.ndarray, a1: np.ndarray, b0: np.ndarray, b1: np.ndarray,
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``intervals.overlap`` on plain ns arrays: ``ia``, ``ib``, overlap start (ns) and seconds."""
    first = np.searchsorted(b1, a0, side="right")
    last = np.searchsorted(b0, a1, side="left")
    k = np.maximum(last - first, 0)
    ia = np.repeat(np.arange(len(a0)), k)
    ib = np.repeat(first, k) + np.arange(k.sum()) - np.repeat(np.cumsum(k) - k, k)
    start, end = np.maximum(a0[ia], b0[ib]), np.minimum(a1[ia], b1[ib])
    keep = end > start
    return ia[keep], ib[keep], start[keep], (end[keep] - start[keep]) / 1e9


def _ideal_production(
    total: pd.DataFrame | None,
    periods: pd.DataFrame,
    ict: float | None,
    product_cycle_times: pd.DataFrame | None,
    total_by_period: np.ndarray,
) -> np.ndarray:
    if product_cycle_times is None or product_cycle_times.empty or total is None or total.empty:
        return np.asarray(total_by_period, dtype=float) * (ict if ict is not None else np.nan)
    steps = product_cycle_times.sort_values("time")
    merged = pd.merge_asof(total.sort_values("time"), steps, on="time", direction="backward")
    per_unit = merged["ideal_cycle_time_s"].fillna(ict if ict is not None else np.nan)
    weighted = pd.DataFrame({"time": merged["time"], "increment": merged["increment"] * per_unit})
    return sum_by_period(weighted, periods)


def rollup(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Sum time elements and counts over ``by`` and recompute the ratios from the sums."""
    cols = [c for c in SUM_COLUMNS if c in frame.columns]
    agg: dict[str, tuple[str, str]] = {c: (c, "sum") for c in cols}
    agg["time_end"] = ("time_end", "max")
    out = frame.groupby(by, as_index=False, sort=True).agg(**agg)
    return ratios(out)



def assign_periods(rows: pd.DataFrame, periods: pd.DataFrame) -> pd.DataFrame:
    """Rows (e.g. hours) with the start, end and shift name of the period containing each row's ``time``.

    Rows outside every period are dropped. Hours nest in plant-local days and months, so summing hour rows per day
    or month gives exactly the day or month figures.
    """
    p0 = periods["time"].to_numpy(dtype="datetime64[ns]")
    p1 = periods["time_end"].to_numpy(dtype="datetime64[ns]")
    t = rows["time"].to_numpy(dtype="datetime64[ns]")
    idx = np.searchsorted(p0, t, side="right") - 1
    ok = (idx >= 0) & (t < p1[np.clip(idx, 0, None)])
    out = rows[ok].copy()
    out["time"] = periods["time"].array[idx[ok]]
    out["time_end"] = periods["time_end"].array[idx[ok]]
    out["shift_name"] = periods["shift_name"].to_numpy()[idx[ok]] if "shift_name" in periods else ""
    return out
