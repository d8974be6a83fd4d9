"""Analytics on generated plants other than the demo, against the simulator's ground truth (issue 21).

Each case backfills a small plant of its own (3 machines with their own ideal cycle times, a seed of its own, a
non-Shanghai time zone, data starting mid-day, a night shift across midnight) with a planted plant-wide energy
saving — or none — and checks every machine-shift's OEE (zero-output shifts included) against the truth and the
recovered saving and its ASHRAE Guideline 14 significance.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import psycopg
import pytest

from analytics import store
from analytics.run import run_plant
from datafactory.config.analytics import AnalyticsConfig, BaselineConfig
from simulator.backfill import backfill
from simulator.layout import PlantLayout, machine_spec
from simulator.model import SimOptions
from tests.test_analytics_sim import _drop, _new_db

pytestmark = pytest.mark.integration

TZ = "Europe/Berlin"  # UTC+1 in January/February: no daylight-saving change inside the spans
START = datetime(2026, 1, 6, 9, 20, tzinfo=UTC)  # Tuesday 10:20 plant-local: a partial first day and shift
DAYS = 13
SAVING_FROM = date(2026, 1, 14)  # Wednesday; 7 complete baseline days (Jan 7–13) before it


def _layout(cycles: tuple[float, ...]) -> PlantLayout:
    machines = tuple(machine_spec("machining", "line-1", f"m-{i + 1}", i + 1, ideal_cycle_time_s=c)
                     for i, c in enumerate(cycles))
    return PlantLayout(machines, enterprise="other-plant", site="site-2", timezone=TZ)


def _frame(url: str, query: str, columns: str) -> pd.DataFrame:
    with psycopg.connect(url) as conn:
        return pd.DataFrame(conn.execute(query).fetchall(), columns=columns.split())


@pytest.mark.parametrize(("saving", "seed", "cycles"), [
    (0.0, 11, (33.0, 41.0, 57.0)),
    (0.03, 12, (29.0, 47.0, 61.0)),
    (0.07, 13, (36.0, 44.0, 52.0)),
    (0.15, 14, (25.0, 39.0, 64.0)),
])
def test_generated_plant_oee_and_saving(template_db: str, saving: float, seed: int, cycles: tuple[float, ...]) -> None:
    url = _new_db(template_db)
    try:
        saving_at = pd.Timestamp(SAVING_FROM).tz_localize(TZ).tz_convert("UTC").to_pydatetime()
        options = SimOptions(seed=seed, analog_period_s=300.0,
                             energy_saving_at=saving_at if saving else None, energy_saving_fraction=saving)
        backfill(url, _layout(cycles), options, start=START, end=START + timedelta(days=DAYS))
        with store.session(url) as conn:
            plant = store.plants(conn)[0]
        assert plant.timezone == TZ
        cfg = AnalyticsConfig(baseline=BaselineConfig(baseline_to=SAVING_FROM))  # baseline from the first full day
        run_plant(url, plant, None, None, cfg)

        truth = _frame(url, "SELECT cell_path, shift_start, shift_name, planned_busy_s, apt_s, total_count,"
                       " good_count FROM sim_truth_shift", "cell time name pbt apt total good")
        ours = _frame(url, "SELECT c.area || '/' || c.line || '/' || c.cell, o.time, o.availability, o.oee,"
                      " (c.attributes->>'ideal_cycle_time_s')::float FROM oee o JOIN cells c ON c.id = o.cell_id"
                      " WHERE o.period = 'shift'", "cell time A OEE ict")
        m = truth.merge(ours, on=["cell", "time"])
        assert len(m) == len(truth) >= 3 * 18, "every machine-shift of the truth has an OEE row"
        assert set(m["ict"]) == set(cycles)
        local = m["time"].dt.tz_convert(TZ)
        assert set(local.dt.hour) == {8, 20}, "shifts follow the plant's own time zone"
        expected = m["ict"] * m["good"] / m["pbt"]  # = A·P·Q, and 0 when nothing good was made
        assert m["OEE"].notna().all(), "OEE is defined for every shift with planned busy time"
        worst = float((m["OEE"] - expected).abs().max() * 100)
        assert worst <= 0.1, f"OEE differs from the ground truth by {worst:.3f} pp"
        worst_a = float((m["A"] - m["apt"] / m["pbt"]).abs().max() * 100)
        assert worst_a <= 0.1, f"availability differs by {worst_a:.3f} pp"

        base = _frame(url, "SELECT time, saving_fraction, saving_half_width, saving_significant, n_days"
                      " FROM energy_baseline", "time saving half significant n")
        assert len(base) == 1
        row = base.iloc[0]
        first_full = pd.Timestamp("2026-01-07").tz_localize(TZ)
        assert row["time"] == first_full, "the partial first day is not in the baseline"
        assert row["n"] == 7
        assert abs(row["saving"] - saving) <= 0.01, f"planted {saving:.0%}, recovered {row['saving']:.4f}"
        assert row["half"] > 0
        assert bool(row["significant"]) is (saving > 0), (row["saving"], row["half"])
    finally:
        _drop(url)
