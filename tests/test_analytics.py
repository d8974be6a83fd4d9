"""Analytics pure functions on small hand-built frames; every expectation is computed by hand in the test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics import counters, energy, oee, pdm, tariff
from analytics.alerts import lifecycle
from analytics.baseline import fit_baseline
from analytics.calendar import calendar_periods, shift_periods
from analytics.states import state_intervals
from datafactory.config.analytics import (
    AnalyticsConfig,
    BaselineConfig,
    MicrostopConvention,
    PdmConfig,
    ShiftCalendar,
    Tariff,
)

T0 = pd.Timestamp("2026-03-02T16:00Z")  # 2026-03-03 00:00 Asia/Shanghai, a Tuesday


def at(minutes: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=minutes)


def test_textbook_oee() -> None:
    r = oee.oee_textbook(420 * 60, 47 * 60, 1.0, 19_271, 18_848)
    assert round(r["availability"] * 100, 1) == 88.8
    assert round(r["performance"] * 100, 1) == 86.1
    assert round(r["quality"] * 100, 1) == 97.8
    assert round(r["oee"] * 100, 1) == 74.8


def test_rollup_sums_time_elements_not_percentages() -> None:
    rows = pd.DataFrame({
        "line": ["l1", "l1"], "time": [T0, T0], "time_end": [at(60), at(60)],
        "calendar_s": [3600.0, 3600.0], "planned_down_s": [0.0, 0.0], "pbt_s": [1000.0, 2000.0],
        "apt_s": [900.0, 500.0], "adet_s": [0.0, 0.0], "asut_s": [0.0, 0.0], "adot_s": [100.0, 1500.0],
        "unknown_s": [0.0, 0.0], "microstop_s": [0.0, 0.0], "microstop_count": [0, 0], "stop_count": [1, 1],
        "changeover_count": [0, 0], "total_count": [800.0, 500.0], "good_count": [800.0, 400.0],
        "reject_count": [0.0, 100.0], "ideal_production_s": [800.0, 500.0],
    })
    machines = oee.ratios(rows.copy())
    # machine 1: A .9 · P 800/900 · Q 1 = .8; machine 2: A .25 · P 1 · Q .8 = .2; mean .5
    assert machines["oee"].round(6).tolist() == [0.8, 0.2]
    line = oee.rollup(rows, ["line", "time"]).iloc[0]
    # summed: A 1400/3000 · P 1300/1400 · Q 1200/1300 = 1200/3000 = .4
    assert line["oee"] == pytest.approx(0.4)
    assert line["availability"] == pytest.approx(1400 / 3000)
    assert line["oee"] != pytest.approx(machines["oee"].mean())


def test_counter_with_rollover_and_reset() -> None:
    s = pd.DataFrame({"time": [at(i) for i in range(6)], "value": [99_990.0, 99_995, 3, 10, 2, 5]})
    inc = counters.increments(s)
    # +5, rollover at 100000: 5 + 3 = 8, +7, reset to zero then 2, +3
    assert inc["increment"].tolist() == [5, 8, 7, 2, 3]
    hours = pd.DataFrame({"time": [at(0), at(3)], "time_end": [at(3), at(60)]})
    assert counters.sum_by_period(inc, hours).tolist() == [13, 12]  # increments at minutes 1, 2 | 3, 4, 5


def test_meter_energy_with_reset_and_rollover_per_period() -> None:
    meter = pd.DataFrame({"time": [at(0), at(30), at(60), at(90), at(120)],
                          "value": [99_980.0, 99_995.0, 10.0, 4.0, 24.0]})
    segs = energy.meter_segments(meter)
    assert segs["kwh"].tolist() == [15, 15, 4, 20]  # +15; rollover 100000 − 99995 + 10; reset → 4; +20
    per = pd.DataFrame({"time": [at(0), at(60)], "time_end": [at(60), at(120)], "shift_name": ["", ""]})
    bands = tariff.band_intervals(Tariff(), "Asia/Shanghai", at(0), at(120))
    rows = energy.cell_energy(segs, per, intervals=pd.DataFrame(), bands=bands, tariff=Tariff(), kgce_per_kwh=0.1229,
                                good=None)
    assert rows["kwh"].tolist() == pytest.approx([30, 24])
    # 00:00–02:00 local is valley: everything at the valley price
    assert rows["cost"].tolist() == pytest.approx([30 * 0.247, 24 * 0.247])
    assert rows["tce"].tolist() == pytest.approx([30 * 0.1229 / 1000, 24 * 0.1229 / 1000])


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        # March: valley 0–8 (8 h), flat 8–10, 12–14, 19–24 (9 h), peak 10–12, 14–19 (7 h); 10 kW all day
        ("2026-03-10", 80 * 0.247 + 90 * 0.65 + 70 * 1.105),
        # July (critical month): critical 11–12 and 15–17 (3 h) come out of peak (4 h left)
        ("2026-07-14", 80 * 0.247 + 90 * 0.65 + 40 * 1.105 + 30 * 1.38125),
    ],
)
def test_tou_cost_over_a_day(day: str, expected: float) -> None:
    start = pd.Timestamp(day, tz="Asia/Shanghai").tz_convert("UTC")
    end = start + pd.Timedelta(days=1)
    power = pd.DataFrame({"time": pd.date_range(start, end, freq="15min", inclusive="left"), "value": 10.0})
    segs = energy.power_segments(power, end)
    per = pd.DataFrame({"time": [start], "time_end": [end], "shift_name": [""]})
    bands = tariff.band_intervals(Tariff(), "Asia/Shanghai", start, end)
    row = energy.cell_energy(segs, per, intervals=pd.DataFrame(), bands=bands, tariff=Tariff(), kgce_per_kwh=0.1229,
                                good=None).iloc[0]
    assert row["kwh"] == pytest.approx(240)
    assert row["cost"] == pytest.approx(expected)


def test_peak_15_minute_demand_and_load_factor() -> None:
    # 10 kW, except 40 kW from :05 to :15 → first quarter 10·5/60 + 40·10/60 = 7.5 kWh = 30 kW average
    power = pd.DataFrame({"time": [at(0), at(5), at(15)], "value": [10.0, 40.0, 10.0]})
    segs = energy.power_segments(power, at(60), max_hold_s=3600)
    per = pd.DataFrame({"time": [at(0)], "time_end": [at(60)], "shift_name": [""]})
    bands = tariff.band_intervals(Tariff(), "Asia/Shanghai", at(0), at(60))
    row = energy.cell_energy(segs, per, intervals=pd.DataFrame(), bands=bands, tariff=Tariff(), kgce_per_kwh=0.1229,
                                good=None).iloc[0]
    assert row["kwh"] == pytest.approx(10 * 50 / 60 + 40 * 10 / 60)  # 15 kWh
    assert row["peak_kw_15min"] == pytest.approx(30.0)
    assert row["load_factor"] == pytest.approx(15.0 / 30.0)


def test_state_intervals_microstops_and_conventions() -> None:
    samples = pd.DataFrame({"time": [at(-5), at(10), at(11), at(20), at(25), at(55)],
                            "value": [100.0, 500, 100, 510, 100, 300]})
    cfg = AnalyticsConfig()
    iv = state_intervals(samples, at(0), at(60), cfg)
    assert iv["duration_s"].tolist() == [600, 60, 540, 300, 1800, 300]
    assert iv["microstop"].tolist() == [False, True, False, False, False, False]
    assert iv["time_element"].tolist() == ["apt", "adot", "apt", "adot", "apt", "pdot"]
    per = pd.DataFrame({"time": [at(0)], "time_end": [at(60)], "shift_name": [""]})
    row = oee.machine_oee(iv, per, {}, 1.0).iloc[0]
    assert (row["apt_s"], row["adot_s"], row["planned_down_s"], row["pbt_s"]) == (2940, 360, 300, 3300)
    assert (row["microstop_count"], row["stop_count"], row["microstop_s"]) == (1, 1, 60)
    perf_cfg = cfg.model_copy(update={"microstops": MicrostopConvention.PERFORMANCE})
    perf = state_intervals(samples, at(0), at(60), perf_cfg)
    assert perf["time_element"].tolist()[1] == "apt"


def test_calendar_shifts_skip_sunday_and_use_plant_time() -> None:
    start = pd.Timestamp("2026-03-07T00:00Z")  # Saturday 08:00 local
    shifts = shift_periods(ShiftCalendar(), "Asia/Shanghai", start, start + pd.Timedelta(days=2))
    # Saturday day and night shift; no shifts start on Sunday; Monday day shift starts 2026-03-09T00:00Z
    assert shifts["shift_name"].tolist() == ["day", "night"]
    assert shifts["time"].iloc[0] == start
    days = calendar_periods("day", "Asia/Shanghai", start, start + pd.Timedelta(hours=1))
    assert days["time"].tolist() == [pd.Timestamp("2026-03-06T16:00Z")]


def test_ols_baseline_reports_a_known_ten_percent_saving() -> None:
    rng = np.random.default_rng(7)
    days = pd.date_range("2026-01-01", periods=60, freq="D", tz="UTC")
    production = rng.uniform(800, 1200, len(days))
    kwh = 500 + 2.0 * production + rng.normal(0, 10, len(days))
    reporting = days >= days[40]
    kwh = np.where(reporting, kwh * 0.9, kwh)
    daily = pd.DataFrame({"time": days, "time_end": days + pd.Timedelta(days=1), "kwh": kwh,
                          "production": production})
    result = fit_baseline(daily, days[40], BaselineConfig())
    assert result.saving_fraction == pytest.approx(0.10, abs=0.01)
    assert result.r2 > 0.9 and result.cv_rmse < 0.05 and result.meets_ashrae14
    rep = result.daily[result.daily["phase"] == "reporting"]
    assert (rep["pi_low_kwh"] < rep["expected_kwh"]).all() and (rep["expected_kwh"] < rep["pi_high_kwh"]).all()
    assert rep["cusum_kwh"].is_monotonic_increasing  # savings accumulate every day


def _buckets(values: np.ndarray) -> pd.DataFrame:
    times = pd.date_range(T0, periods=len(values), freq="h")
    return pd.DataFrame({"time": times, "time_end": times + pd.Timedelta(hours=1), "value": values})


def test_ewma_and_cusum_detect_a_ramp_not_the_noise() -> None:
    rng = np.random.default_rng(3)
    flat = 2.0 + rng.normal(0, 0.05, 120)
    ramp = 2.0 + 0.02 * np.arange(1, 81) + rng.normal(0, 0.05, 80)
    h = pdm.health(_buckets(np.concatenate([flat, ramp])), PdmConfig(), zones=None, failure_threshold=7.1)
    assert not h["drift"].iloc[:120].any()
    first = int(np.flatnonzero(h["drift"].to_numpy())[0])
    assert 120 < first < 120 + 15  # a 0.4 σ-per-hour ramp is caught within hours
    assert h["cusum_pos"].iloc[-1] > h["cusum_h"].iloc[-1]
    late = h.iloc[-1]
    assert late["rul_p10_h"] <= late["rul_p50_h"] <= late["rul_p90_h"]


def test_alert_lifecycle_raised_updated_cleared() -> None:
    drift = [False] * 5 + [True] * 10 + [False] * 10
    h = _buckets(np.full(len(drift), 3.0)).assign(
        drift=drift, baseline_mean=2.0, ewma=3.0, cusum_pos=9.0, zone="C", rul_p10_h=np.nan, rul_p50_h=np.nan,
        rul_p90_h=np.nan)
    cfg = PdmConfig(raise_after=3, clear_after=6)
    first = lifecycle(h.iloc[:8], cfg, label="cnc-01 vibration")
    assert len(first) == 1 and first[0].status == "raised" and first[0].time == h["time_end"].iloc[7]
    rest = lifecycle(h.iloc[8:], cfg, label="cnc-01 vibration", open_alert=first[0])
    assert len(rest) == 1 and rest[0] is first[0], "the same alert is updated, not a new one raised"
    # updates: 7 more drifting buckets + 5 healthy ones; the 6th healthy bucket clears it
    assert rest[0].status == "cleared" and rest[0].update_count == 12
    assert rest[0].time_end == h["time_end"].iloc[20]


def test_ideal_cycle_time_per_product() -> None:
    # 60 min running; product 1 (2 s/unit) makes 600 units in the first half hour, product 2 (4 s) 300 after
    iv = state_intervals(pd.DataFrame({"time": [at(0)], "value": [100.0]}), at(0), at(60), AnalyticsConfig())
    total = pd.DataFrame({"time": [at(30), at(60) - pd.Timedelta(seconds=1)], "increment": [600.0, 300.0]})
    steps = pd.DataFrame({"time": [at(0), at(30) + pd.Timedelta(seconds=1)], "ideal_cycle_time_s": [2.0, 4.0]})
    per = pd.DataFrame({"time": [at(0)], "time_end": [at(60)], "shift_name": [""]})
    row = oee.machine_oee(iv, per, {"total_count": total}, 3.0, steps).iloc[0]
    assert row["ideal_production_s"] == pytest.approx(600 * 2 + 300 * 4)
    assert row["performance"] == pytest.approx(2400 / 3600)


def test_baseline_with_degree_days() -> None:
    rng = np.random.default_rng(11)
    days = pd.date_range("2026-01-01", periods=50, freq="D", tz="UTC")
    production = rng.uniform(800, 1200, len(days))
    temperature = rng.uniform(2, 30, len(days))
    hdd, cdd = np.clip(18 - temperature, 0, None), np.clip(temperature - 18, 0, None)
    kwh = 300 + 2.0 * production + 40 * hdd + 25 * cdd + rng.normal(0, 5, len(days))
    daily = pd.DataFrame({"time": days, "time_end": days + pd.Timedelta(days=1), "kwh": kwh,
                          "production": production, "temperature": temperature})
    result = fit_baseline(daily, days[35], BaselineConfig())
    assert result.formula == "kwh ~ production + hdd + cdd"
    assert result.params["hdd"] == pytest.approx(40, rel=0.05) and result.params["cdd"] == pytest.approx(25, rel=0.1)
    assert result.saving_fraction == pytest.approx(0.0, abs=0.01)  # nothing changed


def test_analytics_config_rejects_what_it_cannot_use() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="more than once"):
        AnalyticsConfig.model_validate({"state_codes": [{"code": 1, "category": "running"},
                                                        {"code": 1, "category": "setup"}]})
    with pytest.raises(ValidationError, match="missing band"):
        AnalyticsConfig.model_validate({"tariff": {"prices": {"flat": 0.6}}})
    with pytest.raises(ValidationError, match="Extra inputs"):
        AnalyticsConfig.model_validate({"microstop_treshold_s": 60})
    cfg = AnalyticsConfig.model_validate({"microstops": "performance", "calendar": {"shifts": [
        {"name": "day", "start": "07:30", "end": "19:30"}]}})
    assert cfg.microstops is MicrostopConvention.PERFORMANCE and cfg.tariff.prices  # defaults fill the rest
