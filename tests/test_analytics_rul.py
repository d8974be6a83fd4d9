"""RUL intervals calibrated on held-out trajectories (issue 21): the conformal factors by hand on a small frame,
and the stored P10–P90 against the simulator's true failure times on degradations the calibration never saw."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analytics import rul_calibration
from datafactory.config.analytics import PdmConfig, RulCalibrationBin
from tests.support import rul_trajectories as rt


def test_conformal_factors_by_hand() -> None:
    # Raw P10/P50/P90 = 10/20/40 h: lower half-width ln 2, upper ln 2. Truths 5, 10, 20, 30, 80 h give
    # s⁻ = ln(20/T)/ln 2 = 2, 1, 0, −0.585, −2 and s⁺ = −s⁻. For a central 80 %, each side takes the rank
    # ⌈(n + 1)·0.9⌉ = 6 > n = 5 → the largest score: lower 2, upper 2.
    raw = pd.DataFrame({"rul_p10_h": 10.0, "rul_p50_h": 20.0, "rul_p90_h": 40.0,
                        "true_h": [5.0, 10.0, 20.0, 30.0, 80.0]})
    s = rul_calibration.scores(raw)
    assert s["s_lo"].tolist() == pytest.approx([2.0, 1.0, 0.0, -math.log2(1.5), -2.0])
    assert s["s_hi"].tolist() == pytest.approx([-2.0, -1.0, 0.0, math.log2(1.5), 2.0])
    (one,) = rul_calibration.fit(raw, ())
    assert (one.lower, one.upper, one.checks) == (2.0, 2.0, 5)
    # Calibrated: P10 = 20·(10/20)² = 5, P90 = 20·(40/20)² = 80; NaN P90 (beyond the horizon) stays NaN.
    out = rul_calibration.apply(np.array([[10.0, 20.0, 40.0], [10.0, 20.0, np.nan], [0.0, 0.0, 0.0]]), [one])
    assert out[0].tolist() == [5.0, 20.0, 80.0] and math.isnan(out[1, 2]) and out[2].tolist() == [0.0, 0.0, 0.0]
    # Bins by predicted P50: below 24 h one factor, above another; factors ≥ 0 keep P10 ≤ P50 ≤ P90.
    bins = [RulCalibrationBin(p50_below_h=24.0, lower=0.5, upper=0.0), RulCalibrationBin(lower=1.0, upper=1.0)]
    out = rul_calibration.apply(np.array([[4.0, 16.0, 64.0], [10.0, 30.0, 90.0]]), bins)
    assert out.tolist() == [[8.0, 16.0, 16.0], [10.0, 30.0, 90.0]]
    with pytest.raises(ValueError, match="ascend"):
        PdmConfig(rul_calibration=[RulCalibrationBin(p50_below_h=48.0), RulCalibrationBin(p50_below_h=24.0),
                                   RulCalibrationBin()])


SEEDS = (1, 2, 3, 4, 5, 6)  # held out: the shipped factors come from rt.CALIBRATION_SEEDS


def test_rul_interval_covers_the_true_failure_time_on_held_out_trajectories() -> None:
    assert not set(SEEDS) & set(rt.CALIBRATION_SEEDS)
    checks = rt.many(SEEDS, [300.0], raw=False, workers=1)
    assert checks["seed"].nunique() == len(SEEDS) and len(checks) >= 6 * 60
    rates = checks.groupby("seed")["true_h"].max()
    assert rates.max() - rates.min() > 24, "the trajectories degrade at different rates"
    c = rt.coverage(checks)
    assert 0.70 <= c["coverage"] <= 0.90, c
    assert c["below_p10"] > 0 and c["above_p90"] > 0, f"misses on one side only: {c}"
    # Along the whole trajectory, not only near the end: far out (> 72 h left) and close in.
    far, near = rt.coverage(checks[checks["true_h"] > 72]), rt.coverage(checks[checks["true_h"] <= 72])
    assert far["coverage"] >= 0.65 and near["coverage"] >= 0.65, (far, near)


def test_closed_form_prediction_bounds_equal_statsmodels() -> None:
    import statsmodels.api as sm

    from analytics.pdm import _crossings

    rng = np.random.default_rng(7)
    hours = np.arange(30.0)
    values = 2.0 - 0.5 + 0.5 * np.exp(0.04 * hours) * np.exp(rng.normal(0.0, 0.03, len(hours)))
    future = np.linspace(29.0, 400.0, 4000)
    fit = sm.OLS(np.log(values - 2.0 + 0.5), sm.add_constant(hours)).fit()
    frame = fit.get_prediction(sm.add_constant(future, has_constant="add")).summary_frame(alpha=0.2)
    target = np.log(4.5 - 2.0 + 0.5)
    expected = [future[np.flatnonzero(frame[col].to_numpy() >= target)[0]]
                for col in ("obs_ci_upper", "mean", "obs_ci_lower")]
    assert _crossings(hours, values, mu=2.0, c=0.5, threshold=4.5, future=future) == tuple(expected)
