"""Macro analysis of monthly sector series with statsmodels (pure functions on pandas series).

* Seasonal adjustment: OLS on log output with a linear trend, calendar-month effects and the Spring Festival
  regressor (share of the month inside the holiday window, ``datafactory.codes.calendar``); the adjusted series divides
  out the month effects and the estimated festival effect, so a festival moving from January to February does
  not look like a slump and a recovery.
* Forecasts: the same model extrapolated, with 95 % prediction intervals.
* Early warning: year-on-year log growth g_t = log y_t − log y_{t−12} is modelled as a constant plus the
  festival-share difference (the only calendar effect that does not cancel year on year), fitted on the
  history before the month; a month whose growth is below the lower 99 % prediction bound AND at least 5 %
  below the prediction is flagged. Applied to output and to electricity, per division and per town.
* Nowcast: this month's output from its electricity, which connected plants meter before reports arrive:
  output log growth regressed on electricity log growth over the history, applied to the month.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import statsmodels.api as sm

from datafactory.codes.calendar import add_months, holiday_share

MIN_HISTORY = 24  # months of levels before a model is fitted


def _design(months: list[date], t0: date) -> pd.DataFrame:
    t = [(m.year - t0.year) * 12 + m.month - t0.month for m in months]
    frame = pd.DataFrame({"const": 1.0, "trend": t, "festival": [holiday_share(m) for m in months]})
    for k in range(2, 13):
        frame[f"m{k}"] = [1.0 if m.month == k else 0.0 for m in months]
    return frame


def _months(series: pd.Series) -> list[date]:
    return [pd.Timestamp(i).date().replace(day=1) for i in series.index]


def seasonal_adjust(series: pd.Series) -> pd.DataFrame:
    """Columns: value, seasonally_adjusted, festival_effect (multiplicative), indexed like ``series``."""
    months = _months(series)
    y = np.log(series.clip(lower=1e-9).to_numpy(float))
    x = _design(months, months[0])
    fit = sm.OLS(y, x).fit()
    month_cols = [c for c in x.columns if c.startswith("m")]
    month_effect = x[month_cols].to_numpy() @ fit.params[month_cols].to_numpy()
    month_effect -= month_effect.mean()  # seasonal factors average to 1 over the year
    festival = fit.params["festival"] * x["festival"].to_numpy()
    adjusted = np.exp(y - month_effect - festival)
    return pd.DataFrame(
        {"value": series.to_numpy(float), "seasonally_adjusted": adjusted, "festival_effect": np.exp(festival)},
        index=series.index,
    )


def forecast(series: pd.Series, horizon: int = 6, alpha: float = 0.05) -> pd.DataFrame:
    """Forecast of the next ``horizon`` months with prediction intervals (columns forecast, lower, upper)."""
    months = _months(series)
    x = _design(months, months[0])
    fit = sm.OLS(np.log(series.clip(lower=1e-9).to_numpy(float)), x).fit()
    future = [add_months(months[-1], k + 1) for k in range(horizon)]
    pred = fit.get_prediction(_design(future, months[0])).summary_frame(alpha=alpha)
    return pd.DataFrame(
        {"forecast": np.exp(pred["mean"]), "lower": np.exp(pred["obs_ci_lower"]),
         "upper": np.exp(pred["obs_ci_upper"])},
    ).set_index(pd.to_datetime(future))


@dataclass(frozen=True)
class Warning:
    scope: str
    measure: str
    month: date
    actual: float
    expected: float
    lower: float
    yoy_growth: float

    @property
    def shortfall(self) -> float:
        return self.actual / self.expected - 1


def _yoy(series: pd.Series) -> tuple[list[date], np.ndarray, np.ndarray]:
    months = _months(series)
    values = dict(zip(months, series.to_numpy(float), strict=True))
    out_m, g, dsf = [], [], []
    for m in months:
        prev = m.replace(year=m.year - 1)
        if prev in values and values[prev] > 0 and values[m] > 0:
            out_m.append(m)
            g.append(np.log(values[m] / values[prev]))
            dsf.append(holiday_share(m) - holiday_share(prev))
    return out_m, np.array(g), np.array(dsf)


def check_month(
    series: pd.Series, month: date, *, scope: str = "", measure: str = "output_value", alpha: float = 0.01,
    min_shortfall: float = 0.05,
) -> Warning | None:
    """A warning if ``month`` of ``series`` falls significantly below what its history predicts."""
    months, g, dsf = _yoy(series)
    if month not in months:
        return None
    i = months.index(month)
    if i < 6:  # too little year-on-year history
        return None
    x = np.column_stack([np.ones(i), dsf[:i]])
    fit = sm.OLS(g[:i], x).fit()
    pred = fit.get_prediction(np.array([[1.0, dsf[i]]])).summary_frame(alpha=2 * alpha)
    mean, lower = float(pred["mean"].iloc[0]), float(pred["obs_ci_lower"].iloc[0])
    values = dict(zip(_months(series), series.to_numpy(float), strict=True))
    prev = values[month.replace(year=month.year - 1)]
    actual = values[month]
    expected = prev * np.exp(mean)
    if g[i] < lower and actual / expected - 1 <= -min_shortfall:
        return Warning(scope, measure, month, actual, float(expected), float(prev * np.exp(lower)),
                       float(np.exp(g[i]) - 1))
    return None


def early_warnings(
    frame: pd.DataFrame, month: date, measures: tuple[str, ...] = ("output_value", "electricity_kwh"),
    *, min_enterprises: int = 10,
) -> list[Warning]:
    """Warnings for ``month`` over a long frame with columns month, scope, enterprises and the measures.

    Scopes with fewer than ``min_enterprises`` in the month are skipped: one closure moves them by itself.
    """
    out: list[Warning] = []
    for scope, rows in frame.groupby("scope"):
        group = rows.set_index("month").sort_index()
        now = group[group.index == pd.Timestamp(month)]
        if now.empty or int(now["enterprises"].iloc[0]) < min_enterprises:
            continue
        for measure in measures:
            w = check_month(group[measure], month, scope=str(scope), measure=measure)
            if w is not None:
                out.append(w)
    return out


@dataclass(frozen=True)
class Nowcast:
    month: date
    nowcast: float
    lower: float
    upper: float
    electricity_growth: float


def nowcast(output: pd.Series, electricity: pd.Series, month: date, alpha: float = 0.05) -> Nowcast | None:
    """Output of ``month`` from its electricity; ``output`` must hold the months before ``month``."""
    om, og, _ = _yoy(output[output.index < pd.Timestamp(month)])
    em, eg, _ = _yoy(electricity)
    e_by_month = dict(zip(em, eg, strict=True))
    pairs = [(e_by_month[m], g) for m, g in zip(om, og, strict=True) if m in e_by_month]
    if len(pairs) < 6 or month not in e_by_month:
        return None
    xs, ys = np.array(pairs).T
    fit = sm.OLS(ys, np.column_stack([np.ones(len(xs)), xs])).fit()
    pred = fit.get_prediction(np.array([[1.0, e_by_month[month]]])).summary_frame(alpha=alpha)
    prev_month = month.replace(year=month.year - 1)
    prev = float(output[pd.Timestamp(prev_month)])
    mean, lower, upper = (float(np.exp(pred[c].iloc[0])) for c in ("mean", "obs_ci_lower", "obs_ci_upper"))
    return Nowcast(month, prev * mean, prev * lower, prev * upper, float(np.exp(e_by_month[month]) - 1))
