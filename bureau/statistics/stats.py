"""Statistics over any combination of dimensions, computed from enterprise facts (pure functions).

Same-scope (同口径) growth: both periods are summed over the SAME set of enterprises — those in the scope in
the current month (by their attributes as of that month) that also reported a year earlier. Enterprises that
entered the scope (new, or grown into it) without a report a year earlier, and enterprises no longer in it,
are in neither sum. Energy intensity = tce per 10,000 yuan of output; electricity index = same-scope
electricity against the same month a year earlier (= 100).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from bureau.statistics.facts import DIMENSIONS, MEASURES

STAT_COLUMNS = (
    "enterprises", *MEASURES, "output_ytd", "yoy_growth", "ytd_growth", "electricity_index", "energy_intensity",
    "connected", "operating_rate",
)


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    return (num / den.where(den > 0)).astype(float)


def summarize(
    facts: pd.DataFrame, by: Sequence[str] = (), filters: Mapping[str, str | Sequence[str]] | None = None
) -> pd.DataFrame:
    """Aggregate enterprise facts of one month by ``by`` after applying ``filters`` (dimension → value(s))."""
    for dim in [*by, *(filters or {})]:
        if dim not in DIMENSIONS:
            raise ValueError(f"unknown dimension {dim!r}; use one of {', '.join(DIMENSIONS)}")
    frame = facts
    for dim, wanted in (filters or {}).items():
        values = [wanted] if isinstance(wanted, str) else list(wanted)
        frame = frame[frame[dim].isin(values)]
    frame = frame.assign(
        _one=1,
        _same=frame["prev_output"].notna(),
        _cur_same=frame["output_value"].where(frame["prev_output"].notna(), 0.0),
        _prev_same=frame["prev_output"].fillna(0.0),
        _ytd_same=frame["output_ytd"].where(frame["prev_ytd"].notna(), 0.0),
        _prev_ytd_same=frame["prev_ytd"].fillna(0.0),
        _kwh_same=frame["electricity_kwh"].where(frame["prev_kwh"].notna(), 0.0),
        _prev_kwh_same=frame["prev_kwh"].fillna(0.0),
        _connected=frame["connected"].astype(int),
        _metered=frame["operating"].notna().astype(int),
        _operating=frame["operating"].fillna(False).astype(bool).astype(int),
    )
    sums = ["_one", *MEASURES, "output_ytd", "_cur_same", "_prev_same", "_ytd_same", "_prev_ytd_same", "_kwh_same",
            "_prev_kwh_same", "_connected", "_metered", "_operating"]
    agg = frame.groupby(list(by), observed=True)[sums].sum().reset_index() if by else frame[sums].sum().to_frame().T
    out = agg[list(by)].copy() if by else pd.DataFrame(index=agg.index)
    out["enterprises"] = agg["_one"].astype(int)
    for m in (*MEASURES, "output_ytd"):
        out[m] = agg[m].astype(float)
    out["yoy_growth"] = _ratio(agg["_cur_same"], agg["_prev_same"]) - 1
    out["ytd_growth"] = _ratio(agg["_ytd_same"], agg["_prev_ytd_same"]) - 1
    out["electricity_index"] = 100 * _ratio(agg["_kwh_same"], agg["_prev_kwh_same"])
    out["energy_intensity"] = _ratio(agg["energy_tce"], agg["output_value"])
    out["connected"] = agg["_connected"].astype(int)
    out["operating_rate"] = _ratio(agg["_operating"].astype(float), agg["_metered"].astype(float))
    return out.replace([np.inf, -np.inf], np.nan).reset_index(drop=True)
