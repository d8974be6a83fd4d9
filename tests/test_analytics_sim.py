"""Analytics against the simulator's ground truth (sim_truth_shift / sim_truth_events).

One 13-day backfill of the 8-machine demo plant (coarse 60 s analog period) is shared by the ground-truth test;
the incremental/idempotency test uses its own 2-day plant. Planted: a 10 % energy saving from a plant-local
midnight, a bearing degradation on cnc-02 crossing its threshold inside the range, an energy-meter reset on asm-03.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from analytics import store
from analytics.cli import analytics
from analytics.run import run_plant
from datafactory.config.analytics import AnalyticsConfig, BaselineConfig, PdmConfig
from simulator.backfill import backfill
from simulator.layout import demo_layout
from simulator.model import SimOptions
from tests.conftest import PG_SERVER, _admin

pytestmark = pytest.mark.integration

START = datetime(2026, 2, 28, 16, 0, tzinfo=UTC)  # Sunday 2026-03-01 00:00 in Asia/Shanghai
DAYS = 13
SAVING_AT = datetime(2026, 3, 7, 16, 0, tzinfo=UTC)  # Sunday 2026-03-08 00:00 plant-local
BEARING_CELL = "machining/line-1/cnc-02"
THRESHOLD = 7.1


def _new_db(template_db: str) -> str:
    name = f"dft_an_{uuid.uuid4().hex[:10]}"
    with _admin() as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template_db))
        )
    from datafactory.db.connect import with_database

    return with_database(PG_SERVER, name)


def _drop(url: str) -> None:
    from datafactory.db.connect import database_name

    with _admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database_name(url))))


def sim_config() -> AnalyticsConfig:
    return AnalyticsConfig(
        pdm=PdmConfig(failure_threshold=THRESHOLD),
        # A baseline week (Sunday to Saturday, so idle days are inside it), then the reporting period.
        baseline=BaselineConfig(baseline_from=date(2026, 3, 1), baseline_to=date(2026, 3, 8)),
    )


@pytest.fixture(scope="module")
def plant_db(template_db: str) -> Iterator[str]:
    url = _new_db(template_db)
    try:
        options = SimOptions(seed=1, analog_period_s=60.0, energy_saving_at=SAVING_AT,
                             bearing_fault_cell=BEARING_CELL, bearing_threshold=THRESHOLD,
                             energy_reset_cell="assembly/line-1/asm-03",
                             energy_reset_at=START + timedelta(days=2, hours=3))
        backfill(url, demo_layout(), options, start=START, end=START + timedelta(days=DAYS))
        with store.session(url) as conn:
            plant = store.plants(conn)[0]
        summary = run_plant(url, plant, None, None, sim_config())  # incremental from the first sample
        assert summary.rows["oee"] > 0
        yield url
    finally:
        _drop(url)


def _frame(url: str, query: str, columns: str) -> pd.DataFrame:
    with psycopg.connect(url) as conn:
        return pd.DataFrame(conn.execute(query).fetchall(), columns=columns.split())


def test_against_simulator_ground_truth(plant_db: str) -> None:
    url = plant_db
    truth = _frame(url, "SELECT cell_path, shift_start, planned_busy_s, apt_s, total_count, good_count, energy_kwh,"
                   " microstop_count FROM sim_truth_shift", "cell time pbt apt total good kwh microstops")
    ours = _frame(url, "SELECT c.area || '/' || c.line || '/' || c.cell, o.time, o.availability, o.performance,"
                  " o.quality, o.oee, o.microstop_count, (c.attributes->>'ideal_cycle_time_s')::float, e.kwh"
                  " FROM oee o JOIN cells c ON c.id = o.cell_id JOIN energy e ON (e.cell_id, e.period, e.time) ="
                  " (o.cell_id, o.period, o.time) WHERE o.period = 'shift'", "cell time A P Q OEE microstops ict kwh")
    m = truth.merge(ours, on=["cell", "time"], suffixes=("_t", ""))
    assert len(m) == len(truth) >= 8 * 18, "every machine-shift of the truth has an OEE row"
    t_a = m["apt"] / m["pbt"]
    t_p = m["ict"] * m["total"] / m["apt"]
    t_q = m["good"] / m["total"]
    for name, expected in (("A", t_a), ("P", t_p), ("Q", t_q), ("OEE", t_a * t_p * t_q)):
        worst = float((m[name] - expected).abs().max() * 100)
        assert worst <= 0.1, f"{name} differs from the ground truth by {worst:.3f} pp"
    assert (m["microstops"] == m["microstops_t"]).all()
    energy_err = float(((m["kwh"] - m["kwh_t"]).abs() / m["kwh_t"]).max() * 100)
    assert energy_err <= 0.5, f"shift energy differs by {energy_err:.3f} %"

    plant = _frame(url, "SELECT p.time, p.meters, p.kwh, (SELECT sum(e.kwh) FROM energy e JOIN cells c ON c.id ="
                   " e.cell_id WHERE c.area <> 'utilities' AND e.period = 'shift' AND e.time = p.time)"
                   " FROM energy_plant p WHERE p.period = 'shift'", "time meters kwh machines")
    plant = plant[plant["time"].isin(set(m["time"]))]  # whole shifts (the truth has no partial ones)
    assert len(plant) == m["time"].nunique() and (plant["meters"] == 1).all()
    # The main meter sees every machine plus the unmetered base load (18 kW).
    base_kw = (plant["kwh"] - plant["machines"]) / 12.0
    assert base_kw.between(18 * 0.9 * 0.99, 18 * 1.01).all(), base_kw.describe()

    base = _frame(url, "SELECT saving_fraction, r2, cv_rmse, nmbe, meets_ashrae14, n_days FROM energy_baseline",
                  "saving r2 cv nmbe ok n")
    assert len(base) == 1 and base["n"][0] >= 5
    assert abs(base["saving"][0] - 0.10) <= 0.01, f"reported saving {base['saving'][0]:.4f}"
    assert base["ok"][0] and base["r2"][0] > 0.75 and base["cv"][0] < 0.2
    daily = _frame(url, "SELECT phase, cusum_kwh FROM energy_baseline_daily ORDER BY time", "phase cusum")
    assert daily["phase"].tolist().count("reporting") >= 5 and daily["cusum"].iloc[-1] > 0

    # Predictive maintenance: one alert for the degrading machine, early enough; RUL intervals that hold.
    crossing = _frame(url, "SELECT time FROM sim_truth_events WHERE kind = 'bearing_failure_threshold'", "t")["t"][0]
    alerts = _frame(url, "SELECT c.area || '/' || c.line || '/' || c.cell, a.time FROM alerts a"
                    " JOIN cells c ON c.id = a.cell_id ORDER BY a.time", "cell time")
    mine = alerts[alerts["cell"] == BEARING_CELL]
    assert len(mine) == 1, "a degrading machine yields one alert that updates"
    lead_h = (crossing - mine["time"].iloc[0]).total_seconds() / 3600
    assert lead_h >= 24, f"alert only {lead_h:.1f} h before the threshold crossing"
    healthy = alerts[alerts["cell"] != BEARING_CELL]
    machine_days = 7 * DAYS
    assert machine_days >= 30 and len(healthy) <= machine_days / 30, f"false alerts: {healthy}"
    rul = _frame(url, "SELECT h.time_end, h.rul_p10_h, h.rul_p90_h FROM pdm_health h JOIN cells c ON c.id = h.cell_id"
                 f" WHERE c.area || '/' || c.line || '/' || c.cell = '{BEARING_CELL}' AND h.rul_p50_h IS NOT NULL",
                 "t p10 p90")
    true_h = (crossing - rul["t"]).dt.total_seconds() / 3600
    rul, true_h = rul[true_h > 0], true_h[true_h > 0]
    assert len(rul) >= 24
    coverage = float(((rul["p10"] <= true_h) & (true_h <= rul["p90"])).mean())
    assert coverage >= 0.8, f"RUL P10–P90 holds the true remaining time in {coverage:.0%} of evaluations"

    # Line roll-up sums time elements: equal to the ratio of sums, not to the mean of machine OEEs.
    shift0 = m["time"].min()
    line = _frame(url, "SELECT area, line, time, oee FROM oee_line WHERE period = 'shift'", "area line time oee")
    row = line[(line["area"] == "machining") & (line["time"] == shift0)]["oee"].iloc[0]
    sub = _frame(url, "SELECT o.time, o.ideal_production_s, o.good_count, o.total_count, o.pbt_s, o.oee FROM oee o"
                 " JOIN cells c ON c.id = o.cell_id WHERE c.area = 'machining' AND o.period = 'shift'",
                 "time ip good total pbt oee")
    sub = sub[sub["time"] == shift0]
    expected = sub["ip"].sum() / sub["pbt"].sum() * sub["good"].sum() / sub["total"].sum()
    assert row == pytest.approx(expected, rel=1e-9)
    assert not np.isclose(row, sub["oee"].mean())


def test_incremental_run_late_writes_and_idempotent_backfill(template_db: str) -> None:
    url = _new_db(template_db)
    try:
        start = datetime(2026, 4, 6, 0, 0, tzinfo=UTC)
        backfill(url, demo_layout(), SimOptions(seed=5, analog_period_s=120.0), start=start,
                 end=start + timedelta(days=2))
        runner = CliRunner()
        first = runner.invoke(analytics, ["--database-url", url, "run"])
        assert first.exit_code == 0, first.output
        snapshot = "SELECT cell_id, period, time, apt_s, pbt_s, total_count, oee FROM oee ORDER BY 1, 2, 3"
        before = _frame(url, snapshot, "cell period time apt pbt total oee")
        assert set(before["period"]) == {"hour", "shift", "day", "month"}
        with psycopg.connect(url) as conn:
            wm = conn.execute("SELECT watermark FROM analytics_watermarks").fetchone()
            assert wm is not None and wm[0] > start + timedelta(days=1, hours=23)
            sid = conn.execute("SELECT signal_id FROM signal_paths WHERE meaning = 'total_count' LIMIT 1").fetchone()
            assert sid is not None
            conn.execute("INSERT INTO late_writes (signal_id, time_from, time_to, samples) VALUES (%s, %s, %s, 1)",
                         (sid[0], start + timedelta(hours=5), start + timedelta(hours=5, minutes=1)))
        again = runner.invoke(analytics, ["--database-url", url, "run"])
        assert again.exit_code == 0, again.output
        with psycopg.connect(url) as conn:
            pending = conn.execute("SELECT count(*) FROM late_writes WHERE processed_at IS NULL").fetchone()
            assert pending == (0,), "late writes are marked processed"
        redo = runner.invoke(analytics, ["--database-url", url, "backfill", "--from", "2026-04-06T00:00Z",
                                         "--to", "2026-04-07T00:00Z"])
        assert redo.exit_code == 0, redo.output
        after = _frame(url, snapshot, "cell period time apt pbt total oee")
        pd.testing.assert_frame_equal(before, after)  # recomputed windows replace their rows: same result
        _assert_contiguous(url)
        # Incremental from scratch: the first day, then `run` picks up at the watermark — same rows as one pass.
        with psycopg.connect(url) as conn:
            for table in ("oee", "downtime", "energy", "state_intervals", "pdm_health", "analytics_watermarks"):
                conn.execute(f"DELETE FROM {table}")
        first_day = runner.invoke(analytics, ["--database-url", url, "backfill", "--from", "2026-04-06T00:00Z",
                                              "--to", "2026-04-06T21:30Z"])
        assert first_day.exit_code == 0, first_day.output
        rest = runner.invoke(analytics, ["--database-url", url, "run"])
        assert rest.exit_code == 0, rest.output
        stepwise = _frame(url, snapshot, "cell period time apt pbt total oee")
        pd.testing.assert_frame_equal(before, stepwise)
        _assert_contiguous(url)
        # Shifts that do not start on a whole hour are computed from raw samples instead of summed hours.
        half_hour = AnalyticsConfig.model_validate({"calendar": {"shifts": [
            {"name": "early", "start": "07:30", "end": "19:30"}, {"name": "late", "start": "19:30", "end": "07:30"}]},
            "pdm": {"monitored": ["vibration", "temperature"]}})
        with store.session(url) as conn:
            plant = store.plants(conn)[0]
        run_plant(url, plant, pd.Timestamp(start), pd.Timestamp(start + timedelta(days=2)), half_hour)
        shifts = _frame(url, "SELECT cell_id, time, time_end, shift_name, apt_s FROM oee WHERE period = 'shift'"
                        " AND shift_name = 'early'", "cell time end name apt")
        assert len(shifts) > 0 and (shifts["time"].dt.tz_convert("Asia/Shanghai").dt.minute == 30).all()
        one = shifts.iloc[0]
        with psycopg.connect(url) as conn:
            apt = conn.execute(
                "SELECT sum(extract(epoch FROM least(time_end, %s) - greatest(time, %s))) FROM state_intervals"
                " WHERE cell_id = %s AND time_element = 'apt' AND time < %s AND time_end > %s",
                (one["end"], one["time"], int(one["cell"]), one["end"], one["time"])).fetchone()
        assert apt is not None and float(apt[0]) == pytest.approx(one["apt"])
        watched = _frame(url, "SELECT g.meaning, count(*), count(h.zone) FROM pdm_health h JOIN signal_paths g"
                         " ON g.signal_id = h.signal_id GROUP BY 1 ORDER BY 1", "meaning rows zoned")
        assert watched["meaning"].tolist() == ["temperature", "vibration"]
        assert watched["zoned"].tolist()[0] == 0 and watched["zoned"].tolist()[1] > 0  # zones are for vibration
    finally:
        _drop(url)


def _assert_contiguous(url: str) -> None:
    """Stored state intervals of each cell neither overlap nor leave gaps, however windows were recomputed."""
    with psycopg.connect(url) as conn:
        bad = conn.execute(
            "SELECT count(*) FROM (SELECT time_end, lead(time) OVER (PARTITION BY cell_id ORDER BY time) AS nxt"
            " FROM state_intervals) x WHERE nxt IS NOT NULL AND nxt <> time_end").fetchone()
    assert bad == (0,), f"{bad} state intervals overlap or leave a gap before the next one"
