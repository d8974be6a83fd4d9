"""What the simulator plants in a machine, without any network: a bearing fault that degrades to the failure
threshold, an energy-meter reset, a short breakdown of a given length; each in the ground truth where it happened."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from datafactory.contract.sample import datetime_to_us
from simulator import PlantLayout, PlantModel, SimOptions, demo_layout
from tests.test_simulator_model import START, _options


def test_bearing_degradation_rises_to_the_threshold():
    layout = PlantLayout(demo_layout().machines[:1])
    cell = layout.machines[0].path
    start = datetime(2026, 3, 2, tzinfo=UTC)
    model = PlantModel(
        layout,
        SimOptions(seed=3, analog_period_s=300, bearing_fault_cell=cell),
        start=start,
        end=start + timedelta(days=16),
    )
    samples = list(model.samples())
    events = {e.kind: e for e in model.truth().events}
    onset, crossing = events["bearing_degradation_onset"].time_us, events["bearing_failure_threshold"].time_us
    assert 5.0 <= (crossing - onset) / 86_400e6 <= 10.0
    assert events["bearing_failure_threshold"].details["threshold_mm_s"] == 7.1
    assert "bearing_failure" in events and events["bearing_failure"].time_us >= crossing
    code = 0
    early: list[float] = []
    late: list[float] = []
    healthy_after: list[float] = []
    for t, i, v in samples:
        sig = model.signal_keys[i][1]
        if sig == "state":
            code = int(v)
        elif sig == "vibration" and code == 100:
            if t < onset:
                early.append(v)
            elif crossing - 12 * 3600e6 <= t < crossing:
                late.append(v)
            elif t > events["bearing_failure"].time_us + 24 * 3600e6:
                healthy_after.append(v)
    assert early and late and healthy_after
    assert 1.2 < sum(early) / len(early) < 2.6
    assert 5.5 < sum(late) / len(late) < 7.2
    assert max(healthy_after) < 3.0  # the bearing was replaced during the breakdown


def test_energy_meter_reset_is_planted_and_recorded():
    layout = PlantLayout(demo_layout().machines[:1])
    cell = layout.machines[0].path
    start = datetime(2026, 3, 2, tzinfo=UTC)
    reset_at = start + timedelta(hours=30)
    opts = SimOptions(seed=2, analog_period_s=60, energy_reset_cell=cell, energy_reset_at=reset_at)
    model = PlantModel(layout, opts, start=start, end=start + timedelta(days=2))
    energy = [(t, v) for t, i, v in model.samples() if model.signal_keys[i] == (cell, "energy")]
    drops = [(t, a, b) for (_, a), (t, b) in itertools.pairwise(energy) if b < a]
    assert len(drops) == 1 and drops[0][0] == datetime_to_us(reset_at) and drops[0][2] < 1.0
    (event,) = [e for e in model.truth().events if e.kind == "energy_meter_reset"]
    assert event.time_us == drops[0][0] and event.details["value_before"] >= drops[0][1]


def test_planted_breakdown_stops_the_machine_for_exactly_its_length_and_is_in_the_truth():
    cell = "machining/line-1/cnc-01"
    start = START + timedelta(hours=1)  # Saturday 09:00 local: worked time
    at = start + timedelta(minutes=20, seconds=7)
    opts = _options(breakdown_cell=cell, breakdown_at=at, breakdown_s=45.0)
    model = PlantModel(demo_layout(), opts, start=start, end=start + timedelta(hours=1))
    changes = list(model.changes())
    states = [(t, v) for c, s, t, v in changes if c == cell and s == "state"]
    at_us = datetime_to_us(at)
    # The stream: mechanical failure at the planted instant, something else exactly 45 s later.
    assert (at_us, 510.0) in states
    after = next(v for t, v in states if t > at_us)
    assert next(t for t, v in states if t > at_us) == at_us + 45_000_000 and after != 510.0
    truth = model.truth()
    planted = [e for e in truth.events if e.kind == "planted_breakdown"]
    assert [(e.cell_path, e.time_us, e.details["end_us"], e.details["stop_code"]) for e in planted] == [
        (cell, at_us, at_us + 45_000_000, 510)]
    assert any(s.cell_path == cell and (s.start_us, s.end_us, s.state_code) == (at_us, at_us + 45_000_000, 510)
               for s in truth.states)
    # Other machines and a run without the option are unaffected by it (their own random streams).
    plain = PlantModel(demo_layout(), _options(), start=start, end=start + timedelta(hours=1))
    plain_changes = list(plain.changes())
    for m in demo_layout().machines:
        if m.path != cell:
            assert [ch for ch in changes if ch.cell_path == m.path] == [
                ch for ch in plain_changes if ch.cell_path == m.path]
    with pytest.raises(ValueError, match="not a machine"):
        PlantModel(demo_layout(), _options(breakdown_cell="no/such/cell", breakdown_at=at), start=start)
