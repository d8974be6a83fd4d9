"""Conformal calibration of the remaining-useful-life interval (split conformal, Mondrian by predicted RUL).

The degradation fit of ``analytics.pdm`` gives a *raw* interval (P10ʳ, P50, P90ʳ) from its prediction bounds. On
its own that interval is not a calibrated 80 % interval: checks along one degradation share most of their data,
and the wear-curve family fits a real trajectory only approximately. Calibration turns it into one from
trajectories whose true failure times are known (run-to-failure histories, or the simulator's ground truth):

- conformity scores per check, in log time relative to the raw half-widths:
  ``s⁻ = ln(P50/T) / ln(P50/P10ʳ)`` (how far below P50 the truth T fell, in lower half-widths) and
  ``s⁺ = ln(T/P50) / ln(P90ʳ/P50)``;
- per bin of the predicted P50 (hours, so near-end and far-out checks each get their own factors), the
  ``coverage``-quantiles of s⁻ and s⁺ with the finite-sample correction ⌈(n+1)·q⌉/n (each side misses
  (1 − central)/2 of the time);
- the calibrated interval ``P10 = P50·(P10ʳ/P50)^lower``, ``P90 = P50·(P90ʳ/P50)^upper``. Factors are never
  negative, so P10 ≤ P50 ≤ P90 always.

Pure functions on frames; the trajectories come from whoever calls (tests/support/rul_trajectories.py for the
simulator's bearing model, documented in docs/analytics.md).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from datafactory.config.analytics import RulCalibrationBin


def scores(checks: pd.DataFrame) -> pd.DataFrame:
    """Conformity scores of checks with columns ``rul_p10_h``, ``rul_p50_h``, ``rul_p90_h`` (raw) and ``true_h``.

    Only checks with a positive P50 and a failure still ahead count. A side whose raw bound is unbounded (P90ʳ
    beyond the horizon, NaN) or already at 0 (P10ʳ) covers the truth whatever the factor: its score is −∞.
    """
    d = checks[(checks["rul_p50_h"] > 0) & (checks["true_h"] > 0)]
    p50, true = d["rul_p50_h"].to_numpy(float), d["true_h"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        w_lo = np.log(p50 / d["rul_p10_h"].to_numpy(float))
        w_hi = np.log(d["rul_p90_h"].to_numpy(float) / p50)
        lr = np.log(true / p50)
        s_lo = np.where(np.isfinite(w_lo) & (w_lo > 0), -lr / w_lo, np.where(lr < 0, np.inf, -np.inf))
        s_hi = np.where(np.isfinite(w_hi) & (w_hi > 0), lr / w_hi, np.where(lr > 0, np.inf, -np.inf))
    s_lo = np.where(np.isnan(w_lo) | np.isinf(w_lo), -np.inf, s_lo)  # P10ʳ = 0: nothing can fall below it
    s_hi = np.where(np.isnan(w_hi), -np.inf, s_hi)  # P90ʳ beyond the horizon: nothing above it
    return pd.DataFrame({"p50": p50, "s_lo": s_lo, "s_hi": s_hi}, index=d.index)


def fit(checks: pd.DataFrame, edges_h: tuple[float, ...], *, central: float = 0.8) -> list[RulCalibrationBin]:
    """Factors per P50 bin [edges_h[i−1], edges_h[i]) (the last bin is open) for a ``central`` interval."""
    s = scores(checks)
    q = 1.0 - (1.0 - central) / 2.0
    bins = np.digitize(s["p50"], edges_h)
    out = []
    for k in range(len(edges_h) + 1):
        g = s[bins == k]
        if g.empty:
            raise ValueError(f"no calibration checks with P50 in bin {k} (edges {edges_h})")
        out.append(RulCalibrationBin(p50_below_h=edges_h[k] if k < len(edges_h) else None,
                                     lower=round(max(_quantile(g["s_lo"], q), 0.0), 3),
                                     upper=round(max(_quantile(g["s_hi"], q), 0.0), 3), checks=len(g)))
    return out


def _quantile(values: pd.Series, q: float) -> float:
    v = np.sort(values.to_numpy(float))
    k = min(math.ceil((len(v) + 1) * q), len(v)) - 1  # split-conformal rank
    x = float(v[k])
    if not math.isfinite(x):
        raise ValueError("too few calibration checks with a finite score to reach the coverage")
    return x


def apply(raw: np.ndarray, bins: list[RulCalibrationBin]) -> np.ndarray:
    """Calibrated (P10, P50, P90) rows from raw rows; NaN stays NaN, P50 ≤ 0 gives (0, 0, 0)."""
    out = raw.copy()
    p10, p50, p90 = raw[:, 0], raw[:, 1], raw[:, 2]
    edges = np.array([b.p50_below_h if b.p50_below_h is not None else np.inf for b in bins])
    k = np.minimum(np.searchsorted(edges, np.nan_to_num(p50, nan=0.0), side="right"), len(bins) - 1)
    lower = np.array([b.lower for b in bins])[k]
    upper = np.array([b.upper for b in bins])[k]
    ok = p50 > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        out[ok, 0] = p50[ok] * np.power(np.clip(p10[ok] / p50[ok], 0.0, 1.0), lower[ok])
        out[ok, 2] = p50[ok] * np.power(p90[ok] / p50[ok], upper[ok])
    return out
