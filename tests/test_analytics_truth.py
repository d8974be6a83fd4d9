"""Issue 21 formulas on small hand-built frames: OEE of shifts that made nothing good, complete days and the
ASHRAE Guideline 14 savings uncertainty of the energy baseline, alert severity as the worst of the episode."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analytics import oee
from analytics.alerts import lifecycle
from analytics.baseline import complete_days, fit_baseline, savings_uncertainty
from datafactory.config.analytics import BaselineConfig, PdmConfig

T0 = pd.Timestamp("2026-03-02T16:00Z")


def _shift(**kw: float) -> pd.DataFrame:
    base = {"calendar_s": 43200.0, "planned_down_s": 1800.0, "pbt_s": 41400.0, "apt_s": 0.0, "adet_s": 0.0,
            "asut_s": 0.0, "adot_s": 0.0, "microstop_s": 0.0, "stop_count": 0, "total_count": 0.0,
            "good_count": 0.0, "ideal_production_s": 0.0}
    base.update(kw)
    return pd.DataFrame([base])


def test_oee_is_zero_for_a_planned_shift_that_made_nothing_good() -> None:
    # Down the whole shift: 41,400 s planned busy, all ADOT. A = 0, P undefined (no APT), Q undefined, OEE = 0.
    down = oee.ratios(_shift(adot_s=41400.0, stop_count=1)).iloc[0]
    assert down["availability"] == 0.0 and math.isnan(down["performance"]) and math.isnan(down["quality"])
    assert down["oee"] == 0.0 and down["teep"] == 0.0 and down["nee"] == 0.0
    # Starved all shift (ADET, an external delay): A = 0, OEE = 0; NEE = APT/(PBT − ADET) is undefined (0/0).
    starved = oee.ratios(_shift(adet_s=41400.0)).iloc[0]
    assert starved["oee"] == 0.0 and math.isnan(starved["nee"])
    # Running all shift with zero output: A = 1, P = 0, Q undefined, OEE = 0.
    idle = oee.ratios(_shift(apt_s=41400.0)).iloc[0]
    assert idle["availability"] == 1.0 and idle["performance"] == 0.0 and math.isnan(idle["quality"])
    assert idle["oee"] == 0.0
    # Everything rejected: Q = 0, OEE = 0.
    scrap = oee.ratios(_shift(apt_s=41400.0, total_count=100.0, ideal_production_s=4500.0)).iloc[0]
    assert scrap["quality"] == 0.0 and scrap["oee"] == 0.0
    # No planned busy time (a Sunday): nothing to measure, OEE undefined.
    sunday = oee.ratios(_shift(pbt_s=0.0, planned_down_s=43200.0)).iloc[0]
    assert math.isnan(sunday["oee"]) and math.isnan(sunday["availability"])


def test_oee_worked_example_matches_a_p_q() -> None:
    # docs/analytics.md worked example: PBT 41,400 s, APT 36,000 s, 720 units at 45 s ideal (32,400 s), 700 good.
    row = oee.ratios(_shift(apt_s=36000.0, adot_s=5400.0, total_count=720.0, good_count=700.0,
                            ideal_production_s=32400.0)).iloc[0]
    a, p, q = 36000 / 41400, 32400 / 36000, 700 / 720
    assert (row["availability"], row["performance"], row["quality"]) == pytest.approx((a, p, q))
    assert row["oee"] == pytest.approx(a * p * q) == pytest.approx(700 * 45 / 41400)  # 76.09 %
    assert round(row["oee"] * 100, 2) == 76.09


def test_line_rollup_counts_a_zero_output_machine() -> None:
    rows = pd.concat([_shift(apt_s=36000.0, adot_s=5400.0, total_count=720.0, good_count=700.0,
                             ideal_production_s=32400.0), _shift(adot_s=41400.0)], ignore_index=True)
    rows = rows.assign(line="l1", time=T0, time_end=T0 + pd.Timedelta(hours=12))
    line = oee.rollup(rows, ["line", "time"]).iloc[0]
    # The dead machine's 41,400 s of PBT halve the line's OEE instead of dropping out of it.
    assert line["oee"] == pytest.approx(700 * 45 / 82800)


def test_complete_days_drop_a_partial_first_and_last_day() -> None:
    days = pd.date_range("2026-03-01T16:00Z", periods=4, freq="D")
    daily = pd.DataFrame({"time": days, "time_end": days + pd.Timedelta(days=1)})
    kept = complete_days(daily, days[0] + pd.Timedelta(hours=10, minutes=20), days[3] + pd.Timedelta(hours=5))
    assert kept["time"].tolist() == [days[1], days[2]]
    assert complete_days(daily, days[0], days[3] + pd.Timedelta(days=1))["time"].tolist() == list(days)


def test_ashrae14_savings_uncertainty_by_hand() -> None:
    # Alternating residuals: lag-1 autocorrelation negative → taken as 0, n' = n. n = 6, p = 2, m = 4, 95 %:
    # t(0.975, 4) = 2.776445; 1.26 · 2.776445 · 0.10 · √((1 + 2/6) / 4) = 0.201976.
    half = savings_uncertainty(np.array([1.0, -1, 1, -1, 1, -1]), cv_rmse=0.10, p=2, m=4, confidence=0.95)
    assert half == pytest.approx(1.26 * 2.776445 * 0.10 * math.sqrt((4 / 3) / 4), rel=1e-6)
    # Residuals 1, 2, 3, −1, −2, −3 (mean 0): ρ = (2 + 6 − 3 + 2 + 6)/28 = 13/28, n/n' = (1 + ρ)/(1 − ρ) = 41/15.
    half = savings_uncertainty(np.array([1.0, 2, 3, -1, -2, -3]), cv_rmse=0.10, p=2, m=4, confidence=0.95)
    assert half == pytest.approx(1.26 * 2.776445 * 0.10 * math.sqrt(41 / 15 * (4 / 3) / 4), rel=1e-6)


def _daily(saving: float, seed: int, noise: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    days = pd.date_range("2026-01-01", periods=42, freq="D", tz="UTC")
    production = rng.uniform(800, 1200, len(days))
    kwh = 500 + 2.0 * production + rng.normal(0, noise, len(days))
    kwh = np.where(days >= days[28], kwh * (1 - saving), kwh)
    return pd.DataFrame({"time": days, "time_end": days + pd.Timedelta(days=1), "kwh": kwh, "production": production})


def test_saving_is_significant_only_when_its_interval_excludes_zero() -> None:
    days = pd.date_range("2026-01-01", periods=42, freq="D", tz="UTC")
    healthy = fit_baseline(_daily(0.0, 5, 40.0), days[28], BaselineConfig())
    assert healthy.saving_half_width is not None and healthy.saving_half_width > abs(healthy.saving_fraction or 0)
    assert healthy.saving_significant is False
    saved = fit_baseline(_daily(0.07, 5, 40.0), days[28], BaselineConfig())
    assert saved.saving_fraction == pytest.approx(0.07, abs=0.01) and saved.saving_significant is True
    assert saved.saving_half_width is not None and saved.saving_fraction is not None
    assert saved.saving_fsu == pytest.approx(saved.saving_half_width / saved.saving_fraction)


def test_alert_severity_is_the_worst_of_the_episode() -> None:
    times = pd.date_range(T0, periods=8, freq="h")
    p50 = [np.nan, 40.0, 30.0, 20.0, 12.0, 30.0, 50.0, 60.0]  # critical (< 24 h) in the middle, then relaxes
    h = pd.DataFrame({"time": times, "time_end": times + pd.Timedelta(hours=1), "value": 3.0, "drift": True,
                      "baseline_mean": 2.0, "ewma": 3.0, "cusum_pos": 9.0, "zone": "C", "rul_p10_h": np.nan,
                      "rul_p50_h": p50, "rul_p90_h": np.nan})
    alerts = lifecycle(h, PdmConfig(raise_after=1, clear_after=3), label="cnc-01 vibration")
    assert len(alerts) == 1 and alerts[0].severity == "critical" and alerts[0].rul_p50_h == 60.0
    calm = lifecycle(h.assign(rul_p50_h=40.0), PdmConfig(raise_after=1, clear_after=3), label="x")
    assert calm[0].severity == "warning"
