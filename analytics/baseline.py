"""ISO 50006 energy baseline: OLS of daily energy on production (and degree-days), with ASHRAE Guideline 14
diagnostics, expected energy with prediction intervals in the reporting period, and the CUSUM of savings.

Input: one row per plant-local day with ``time``, ``time_end``, ``kwh``, a production driver and optionally
``temperature`` (daily mean °C). Days without production *and* without energy are dropped (no data).
Diagnostics follow ASHRAE Guideline 14-2014: CV(RMSE) = RMSE/mean with n − p degrees of freedom; NMBE =
Σ(y − ŷ)/((n − p)·mean).

Only complete days enter the fit and the reporting period (``complete_days``): a day in which data started or
ended covers a fraction of the day's production hours and energy, and would bias the intercept (the base load)
low. The saving carries the fractional savings uncertainty of ASHRAE Guideline 14-2014 (Annex B):

    ΔE_save / E_base = 1.26 · t(α, n − p) · CV(RMSE) · √((n / n′) · (1 + 2/n) · (1/m)),  n′ = n · (1 − ρ)/(1 + ρ)

with n baseline days, m reporting days, ρ the lag-1 autocorrelation of the baseline residuals (0 when negative)
and t two-sided at ``prediction_interval``. ``saving_half_width`` is that fraction of the expected energy, FSU =
half-width / saving, and the saving is *not significant* when saving ± half-width contains 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import special

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
    saving_half_width: float | None = None  # ± fraction of expected energy at the configured confidence
    saving_fsu: float | None = None  # ASHRAE 14 fractional savings uncertainty = half-width / |saving|
    saving_significant: bool | None = None  # the interval saving ± half-width excludes 0
    daily: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)


def degree_days(temperature: pd.Series, base_c: float) -> tuple[pd.Series, pd.Series]:
    """Heating and cooling degree-days from daily mean temperatures."""
    return (base_c - temperature).clip(lower=0), (temperature - base_c).clip(lower=0)


def complete_days(daily: pd.DataFrame, data_start: pd.Timestamp | None, data_end: pd.Timestamp) -> pd.DataFrame:
    """The days (``time``, ``time_end``) that lie wholly inside [data_start, data_end)."""
    keep = daily["time_end"] <= data_end
    if data_start is not None:
        keep &= daily["time"] >= data_start
    return daily[keep].reset_index(drop=True)


def savings_uncertainty(
    resid: np.ndarray, *, cv_rmse: float, p: int, m: int, confidence: float
) -> float:
    """ASHRAE Guideline 14 half-width of the saving, as a fraction of the expected reporting-period energy.

    ``resid``: baseline residuals in time order (n of them, p model parameters); ``m``: reporting days."""
    n = len(resid)
    r = resid - resid.mean()
    denom = float(r @ r)
    rho = float(r[1:] @ r[:-1] / denom) if denom > 0 and n > 2 else 0.0
    rho = min(max(rho, 0.0), 0.99)
    n_eff = n * (1 - rho) / (1 + rho)
    t = float(special.stdtrit(n - p, 0.5 + confidence / 2))  # what scipy.stats.t.ppf computes
    return float(1.26 * t * cv_rmse * np.sqrt((n / n_eff) * (1 + 2 / n) / m))


@dataclass(frozen=True)
class _Ols:
    """Ordinary least squares as statsmodels' ``OLS(...).fit()`` computes it (pseudo-inverse, t statistics), in
    numpy: importing statsmodels costs seconds — more than the whole month's baseline and most of its run."""

    names: list[str]
    params: np.ndarray
    cov: np.ndarray  # scale · (X'X)⁻¹
    scale: float
    df_resid: int
    rsquared: float

    @classmethod
    def fit(cls, y: np.ndarray, x: np.ndarray, names: list[str]) -> _Ols:
        pinv = np.linalg.pinv(x, rcond=1e-15)
        params = pinv @ y
        resid = y - x @ params
        df_resid = len(y) - int(np.linalg.matrix_rank(x))
        ssr = float(resid @ resid)
        scale = ssr / df_resid
        centred = y - y.mean()
        return cls(names, params, scale * (pinv @ pinv.T), scale, df_resid, 1 - ssr / float(centred @ centred))

    def pvalues(self) -> np.ndarray:
        t = self.params / np.sqrt(np.diag(self.cov))
        return np.asarray(special.stdtr(self.df_resid, -np.abs(t)) * 2)  # scipy.stats.t.sf(|t|) · 2

    def predict(self, x: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean and the prediction interval of a new observation (statsmodels' obs_ci_lower / obs_ci_upper)."""
        mean = x @ self.params
        se_obs = np.sqrt(np.einsum("ij,jk,ik->i", x, self.cov, x) + self.scale)
        q = float(special.stdtrit(self.df_resid, 1 - (1 - confidence) / 2))
        return mean, mean - q * se_obs, mean + q * se_obs


def fit_baseline(daily: pd.DataFrame, reporting_start: pd.Timestamp, config: BaselineConfig, *,
                 driver: str = "production") -> BaselineResult:
    """Fit on days before ``reporting_start``; predict from it on and accumulate savings (expected − actual).

    ``driver``: the column of ``daily`` that measures production (the runner uses ideal production hours)."""
    df = daily[(daily["kwh"] > 0) | (daily[driver] > 0)].reset_index(drop=True).copy()
    columns = [driver]
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
    x = np.column_stack([np.ones(len(df)), df[columns].to_numpy(dtype=float)])
    y = df.loc[base, "kwh"].astype(float)
    model = _Ols.fit(y.to_numpy(), x[base.to_numpy()], ["const", *columns])
    fitted = pd.Series(x[base.to_numpy()] @ model.params, index=y.index)
    mean = float(y.mean())
    resid = y - fitted
    cv_rmse = float(np.sqrt((resid**2).sum() / (n - p)) / mean)
    nmbe = float(resid.sum() / ((n - p) * mean))
    df["expected_kwh"], df["pi_low_kwh"], df["pi_high_kwh"] = model.predict(x, config.prediction_interval)
    df["phase"] = np.where(base, "baseline", "reporting")
    df["savings_kwh"] = df["expected_kwh"] - df["kwh"]
    df["cusum_kwh"] = df["savings_kwh"].where(~base, 0.0).cumsum()
    rep = df[~base]
    saving_kwh = float(rep["savings_kwh"].sum()) if len(rep) else None
    saving_fraction = float(saving_kwh / rep["expected_kwh"].sum()) if len(rep) and saving_kwh is not None else None
    half = fsu = significant = None
    if saving_fraction is not None:
        half = savings_uncertainty(resid.to_numpy(), cv_rmse=cv_rmse, p=p, m=len(rep),
                                   confidence=config.prediction_interval)
        fsu = half / abs(saving_fraction) if saving_fraction != 0 else None
        significant = bool(abs(saving_fraction) > half)
    return BaselineResult(
        formula="kwh ~ " + " + ".join(columns),
        params={k: float(v) for k, v in zip(model.names, model.params, strict=True)},
        pvalues={k: float(v) for k, v in zip(model.names, model.pvalues(), strict=True)},
        n_days=n,
        r2=model.rsquared,
        cv_rmse=cv_rmse,
        nmbe=nmbe,
        meets_ashrae14=bool(cv_rmse <= config.cv_rmse_max and abs(nmbe) <= config.nmbe_max),
        saving_fraction=saving_fraction,
        saving_kwh=saving_kwh,
        saving_half_width=half,
        saving_fsu=fsu,
        saving_significant=significant,
        daily=df,
    )
