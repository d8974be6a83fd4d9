"""ISO 50006 energy baseline: OLS of daily energy on production (and degree-days), with ASHRAE Guideline 14
diagnostics, expected energy with prediction intervals in the reporting period, and the CUSUM of savings.

Input: one row per plant-local day with ``time``, ``time_end``, ``kwh``, ``production`` and optionally
``temperature`` (daily mean °C). Days without production *and* without energy are dropped (no data).
Diagnostics follow ASHRAE Guideline 14-2014: CV(RMSE) = RMSE/mean with n − p degrees of freedom; NMBE =
Σ(y − ŷ)/((n − p)·mean).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import statsmodels.api as sm

from datafactory.config.analytics import BaselineConfig
from datafactory.errors import DataFactoryError


class BaselineError(DataFactoryError):
    """Not enough data to fit a baseline (the message says what is missing)."""


@dataclass
class BaselineResult:
    formula: str
    params: dict[str, float]
    pvalues: dict[str, float]
    n_days: int
    r2: float
    cv_rmse: float
    nmbe: float
    meets_ashrae14: bool
    saving_fraction: float | None
    saving_kwh: float | None
    daily: pd.DataFrame = field(repr=False)


def degree_days(temperature: pd.Series, base_c: float) -> tuple[pd.Series, pd.Series]:
    """Heating and cooling degree-days from daily mean temperatures."""
    return (base_c - temperature).clip(lower=0), (temperature - base_c).clip(lower=0)


def _design(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return sm.add_constant(frame[columns].astype(float), has_constant="add")


def fit_baseline(daily: pd.DataFrame, reporting_start: pd.Timestamp, config: BaselineConfig) -> BaselineResult:
    """Fit on days before ``reporting_start``; predict from it on and accumulate savings (expected − actual)."""
    df = daily[(daily["kwh"] > 0) | (daily["production"] > 0)].reset_index(drop=True).copy()
    columns = ["production"]
    if "temperature" in df and df["temperature"].notna().all():
        df["hdd"], df["cdd"] = degree_days(df["temperature"], config.degree_day_base_c)
        # A degree-day term that never varies in the baseline cannot be estimated; leave it out.
        base = df["time"] < reporting_start
        columns += [c for c in ("hdd", "cdd") if df.loc[base, c].std() > 1e-9]
    else:
        df["hdd"], df["cdd"] = np.nan, np.nan
    base = df["time"] < reporting_start
    n, p = int(base.sum()), len(columns) + 1
    if n < p + 2:
        raise BaselineError(f"the baseline period has {n} days with data; at least {p + 2} are needed")
    x = _design(df, columns)
    model = sm.OLS(df.loc[base, "kwh"].astype(float), x[base]).fit()
    fitted = model.fittedvalues
    y = df.loc[base, "kwh"].astype(float)
    mean = float(y.mean())
    resid = y - fitted
    cv_rmse = float(np.sqrt((resid**2).sum() / (n - p)) / mean)
    nmbe = float(resid.sum() / ((n - p) * mean))
    pred = model.get_prediction(x).summary_frame(alpha=1 - config.prediction_interval)
    df["expected_kwh"] = pred["mean"].to_numpy()
    df["pi_low_kwh"] = pred["obs_ci_lower"].to_numpy()
    df["pi_high_kwh"] = pred["obs_ci_upper"].to_numpy()
    df["phase"] = np.where(base, "baseline", "reporting")
    df["savings_kwh"] = df["expected_kwh"] - df["kwh"]
    df["cusum_kwh"] = df["savings_kwh"].where(~base, 0.0).cumsum()
    rep = df[~base]
    saving_kwh = float(rep["savings_kwh"].sum()) if len(rep) else None
    saving_fraction = float(saving_kwh / rep["expected_kwh"].sum()) if len(rep) and saving_kwh is not None else None
    return BaselineResult(
        formula="kwh ~ " + " + ".join(columns),
        params={k: float(v) for k, v in model.params.items()},
        pvalues={k: float(v) for k, v in model.pvalues.items()},
        n_days=n,
        r2=float(model.rsquared),
        cv_rmse=cv_rmse,
        nmbe=nmbe,
        meets_ashrae14=bool(cv_rmse <= config.cv_rmse_max and abs(nmbe) <= config.nmbe_max),
        saving_fraction=saving_fraction,
        saving_kwh=saving_kwh,
        daily=df,
    )
