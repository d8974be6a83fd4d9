"""The plant model, without any network: determinism, physics (energy = ∫power), counters, calendar, truth."""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from datafactory.contract.sample import datetime_to_us, us_to_datetime
from simulator import PlantLayout, PlantModel, SimOptions, demo_layout
from simulator.shift_calendar import SegmentKind, ShiftCalendar
from simulator.states import DOWN_CODES, State

START = datetime(2026, 8, 1, 0, 0, tzinfo=UTC)  # Saturday 08:00 in Dongguan: a day shift begins
END = START + timedelta(days=3)  # through Sunday (no shift) to Tuesday 08:00
SAVING_AT = START + timedelta(days=2, hours=6)
TZ = ZoneInfo("Asia/Shanghai")


def _options(**kw: object) -> SimOptions:
    base: dict[str, object] = {"seed": 7, "analog_period_s": 60.0, "energy_saving_at": SAVING_AT}
    base.update(kw)
    return SimOptions(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def run() -> tuple[PlantModel, list[tuple[int, int, float]]]:
    model = PlantModel(demo_layout(), _options(), start=START, end=END)
    return model, list(model.samples())


_SERIES: dict[int, dict[str, list[tuple[int, float]]]] = {}


def _by_signal(model: PlantModel, samples: list[tuple[int, int, float]]) -> dict[str, list[tuple[int, float]]]:
    if id(samples) not in _SERIES:
        out: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for t, i, v in samples:
            cell, sig = model.signal_keys[i]
            out[f"{cell}/{sig}"].append((t, v))
        _SERIES[id(samples)] = out
    return _SERIES[id(samples)]


def _small(seed: int = 7, machines_per_line: int = 1) -> PlantModel:
    return PlantModel(
        demo_layout(machines_per_line=machines_per_line),
        _options(seed=seed),
        start=START,
        end=START + timedelta(days=1),
    )


def test_same_seed_same_plant_other_seed_other_plant():
    one, again, other = _small(), _small(), _small(seed=8)
    samples = list(one.samples())
    assert list(again.samples()) == samples
    assert again.truth() == one.truth()
    assert list(other.samples()) != samples


def test_a_machine_does_not_depend_on_plant_size():
    small, big = _small(), _small(machines_per_line=3)
    cell = "assembly/line-1/asm-01"

    def of_cell(model: PlantModel) -> list[tuple[int, str, float]]:
        return [(t, model.signal_keys[i][1], v) for t, i, v in model.samples() if model.signal_keys[i][0] == cell]

    assert of_cell(small) == of_cell(big)
    assert [s for s in big.truth().shifts if s.cell_path == cell] == [
        s for s in small.truth().shifts if s.cell_path == cell
    ]


def test_stream_is_time_ordered_and_no_signal_repeats_a_timestamp(run):
    model, samples = run
    times = [t for t, _, _ in samples]
    assert times == sorted(times)
    for key, series in _by_signal(model, samples).items():
        ts = [t for t, _ in series]
        assert len(ts) == len(set(ts)), key
        assert all(t % 1000 == 0 for t in ts), f"{key}: sample times are whole milliseconds"


def test_every_signal_starts_at_the_start_and_analogs_follow_the_period(run):
    model, samples = run
    series = _by_signal(model, samples)
    assert set(series) == {f"{c}/{s}" for c, s in model.signal_keys}
    start_us = datetime_to_us(START)
    for key, values in series.items():
        assert values[0][0] == start_us, key
    vib = [t for t, _ in series["machining/line-1/cnc-01/vibration"]]
    assert {b - a for a, b in itertools.pairwise(vib)} == {60_000_000}
    meter = [t for t, _ in series["utilities/main/main-meter/power"]]
    assert {b - a for a, b in itertools.pairwise(meter)} == {60_000_000}  # the analog period, ≥ 10 s


def test_energy_meter_is_the_exact_integral_of_power(run):
    model, samples = run
    series = _by_signal(model, samples)
    for m in model.layout.machines:
        power = series[f"{m.path}/power"]
        energy = series[f"{m.path}/energy"]
        e0 = energy[0][1]
        pi = 0
        integral = 0.0
        for t, e in energy[1:]:
            # integrate the power step function up to t
            while pi + 1 < len(power) and power[pi + 1][0] <= t:
                integral += power[pi][1] * (power[pi + 1][0] - power[pi][0]) / 3.6e9
                pi += 1
            partial = power[pi][1] * (t - power[pi][0]) / 3.6e9
            assert e - e0 == pytest.approx(integral + partial, rel=1e-9, abs=1e-9), (m.path, t)
        assert energy[-1][1] - e0 > 10.0  # it really consumed energy


def test_counters_are_monotone_and_total_is_good_plus_reject(run):
    model, samples = run
    latest: dict[tuple[str, str], float] = {}
    by_time: dict[int, list[tuple[str, str, float]]] = defaultdict(list)
    for t, i, v in samples:
        cell, sig = model.signal_keys[i]
        if sig in ("good_count", "reject_count", "total_count"):
            by_time[t].append((cell, sig, v))
    for t in sorted(by_time):
        touched = set()
        for cell, sig, v in by_time[t]:
            prev = latest.get((cell, sig))
            assert prev is None or v == prev + 1, (cell, sig, t, prev, v)
            latest[(cell, sig)] = v
            touched.add(cell)
        for cell in touched:
            assert latest[(cell, "total_count")] == latest[(cell, "good_count")] + latest[(cell, "reject_count")]
    for m in model.layout.machines:
        total, rejects = latest[(m.path, "total_count")], latest[(m.path, "reject_count")]
        assert total > 1000
        assert 0.003 < rejects / total < 0.06, (m.path, rejects / total)


def test_shift_truth_sums_and_matches_the_calendar(run):
    model, _ = run
    shifts = model.truth().shifts
    assert len(shifts) == 4 * len(model.layout.machines)  # Sat day, Sat night, Mon day, Mon night
    for s in shifts:
        local = us_to_datetime(s.shift_start_us).astimezone(TZ)
        assert local.weekday() != 6
        assert (local.hour, local.minute) == ((8, 0) if s.shift_name == "day" else (20, 0))
        assert s.shift_end_us - s.shift_start_us == 12 * 3600 * 1_000_000
        assert s.planned_busy_s == pytest.approx(s.apt_s + s.delay_s + s.setup_s + s.down_s, abs=1e-6)
        assert s.planned_busy_s + s.planned_down_s == pytest.approx(12 * 3600, abs=1e-6)
        assert s.planned_down_s >= 1800 - 1e-6  # the 30-minute break
        assert s.microstop_s <= s.down_s
        assert s.total_count == s.good_count + s.reject_count
        if s.planned_busy_s > 6 * 3600:
            assert 0.4 < s.apt_s / s.planned_busy_s < 0.98


def test_shift_truth_agrees_with_the_raw_signals(run):
    """Counts, energy, state time and microstops recomputed from the samples equal the accumulated truth."""
    model, samples = run
    series = _by_signal(model, samples)

    def value_at(key: str, t: int) -> float:
        last = series[key][0][1]
        for ts, v in series[key]:
            if ts > t:
                break
            last = v
        return last

    for s in model.truth().shifts:
        a, b = s.shift_start_us, s.shift_end_us
        total = value_at(f"{s.cell_path}/total_count", b - 1) - value_at(f"{s.cell_path}/total_count", a - 1)
        assert total == s.total_count
        if b < datetime_to_us(END):  # the meter is read at the shift end (a 60 s tick) unless the run ends there
            energy = value_at(f"{s.cell_path}/energy", b) - value_at(f"{s.cell_path}/energy", a)
            assert energy == pytest.approx(s.energy_kwh, rel=1e-9)
        states = series[f"{s.cell_path}/state"]
        down = 0.0
        micro = 0.0
        count = 0
        for (t0, code), (t1, _) in zip(states, [*states[1:], (datetime_to_us(END), 0.0)], strict=True):
            lo, hi = max(t0, a), min(t1, b)
            if hi > lo and int(code) in DOWN_CODES:
                down += (hi - lo) / 1e6
                if t1 - t0 < 120_000_000:
                    micro += (t1 - t0) / 1e6
                    count += 1
        assert down == pytest.approx(s.down_s, abs=1e-3)
        assert count == s.microstop_count
        assert micro == pytest.approx(s.microstop_s, abs=1e-3)


def test_state_truth_intervals_match_the_state_signal(run):
    model, samples = run
    series = _by_signal(model, samples)
    for m in model.layout.machines:
        truth = [(i.start_us, i.state_code) for i in model.truth().states if i.cell_path == m.path]
        assert truth == [(t, int(v)) for t, v in series[f"{m.path}/state"]]
        codes = {c for _, c in truth}
        assert {100, 300, 330} <= codes
        assert codes & DOWN_CODES


def test_no_shift_on_sunday_and_breaks_at_noon_and_midnight(run):
    model, _ = run
    for i in model.truth().states:
        local = us_to_datetime(i.start_us).astimezone(TZ)
        if i.state_code == 300:
            assert (local.hour, local.minute) in ((12, 0), (0, 0))
            assert i.end_us - i.start_us == 30 * 60 * 1_000_000
        if i.state_code == 330:
            assert (local.weekday(), local.hour) == (6, 8)
            assert i.end_us - i.start_us == 24 * 3600 * 1_000_000


def test_energy_saving_lowers_power_by_ten_percent(run):
    model, samples = run
    saving_us = datetime_to_us(SAVING_AT)
    state: dict[str, int] = {}
    before: list[float] = []
    after: list[float] = []
    for t, i, v in samples:
        cell, sig = model.signal_keys[i]
        if sig == "state":
            state[cell] = int(v)
        elif sig == "power" and cell == "machining/line-1/cnc-01" and state.get(cell) == 100:
            (after if t >= saving_us else before).append(v)
    ratio = (sum(after) / len(after)) / (sum(before) / len(before))
    assert ratio == pytest.approx(0.9, abs=0.01)
    events = [e for e in model.truth().events if e.kind == "energy_saving"]
    assert [(e.time_us, e.details["fraction"]) for e in events] == [(saving_us, 0.10)]


def test_calendar_segments_partition_time():
    cal = ShiftCalendar()
    a, b = datetime_to_us(START), datetime_to_us(START + timedelta(days=8))
    segs = list(cal.segments(a, b))
    assert segs[0].start_us == a and segs[-1].end_us == b
    assert all(x.end_us == y.start_us for x, y in itertools.pairwise(segs))
    work = sum(s.end_us - s.start_us for s in segs if s.kind is SegmentKind.WORK) / 3600e6
    assert work == pytest.approx(7 * 2 * 11.5)  # Sat, Mon–Sat: seven worked days, two shifts of 11.5 h


def test_ninety_machine_days_simulate_in_seconds():
    """30 machine-days timed; 90 must take well under a minute even on a loaded 2-core box."""
    layout = PlantLayout(demo_layout().machines[:1])
    model = PlantModel(layout, SimOptions(seed=1, analog_period_s=60), start=START, end=START + timedelta(days=30))
    t0 = time.process_time()
    n = sum(1 for _ in model.samples())
    elapsed = time.process_time() - t0
    assert n > 170_000
    assert 3 * elapsed < 20.0, f"30 machine-days took {elapsed:.1f} s of CPU"


def test_truth_until_clips_a_run_in_progress(run):
    model, _ = run
    cut = datetime_to_us(START + timedelta(days=1, hours=3))
    gt = model.truth_until(cut)
    assert gt.states and all(s.start_us < s.end_us <= cut for s in gt.states)
    assert max(s.end_us for s in gt.states) == cut
    assert len(gt.shifts) == 2 * len(model.layout.machines)  # Saturday day and night shifts ended by then
    assert {e.kind for e in gt.events} == {"energy_saving"}


def test_chunks_stay_small_at_a_one_second_period():
    """A live run at 1 s must not build a whole idle Sunday in memory before the first sample is replayed."""
    layout = PlantLayout(demo_layout().machines[:1])
    sunday = datetime(2026, 8, 2, 0, 0, tzinfo=UTC)  # 08:00 local: a day without shifts begins
    model = PlantModel(layout, SimOptions(seed=1, analog_period_s=1), start=sunday, end=sunday + timedelta(hours=6))
    sizes = [len(c) for c in model.machine_chunks(0)]
    assert sum(sizes) == 6 * 3600 * 4 + 4  # four analog signals every second, plus the initial counters and state
    assert max(sizes) < 4096 + 3600 * 4


def test_calendar_from_a_plant_configs_three_shifts() -> None:
    from datetime import date, time

    from datafactory.config.analytics import ShiftCalendar as ConfigCalendar
    from simulator.shift_calendar import from_config

    cal = from_config(ConfigCalendar.model_validate({
        "shifts": [{"name": "early", "start": "06:00", "end": "14:00"}, {"name": "late", "start": "14:00",
                   "end": "22:00"}, {"name": "night", "start": "22:00", "end": "06:00"}],
        "breaks": [{"start": "10:00", "end": "10:30"}, {"start": "02:00", "end": "02:45"},
                   {"start": "21:45", "end": "22:15"}],
        "non_working_weekdays": [5, 6], "non_working_dates": ["2026-01-07"]}), "America/Chicago")
    early, late, night = cal.shifts
    assert (early.start, early.hours, early.breaks) == (time(6), 8.0, ((time(10), 30.0),))
    assert late.breaks == ((time(21, 45), 15.0),), "a break over the shift change is cut at the shift's end"
    assert (night.hours, night.breaks) == (8.0, ((time(2), 45.0),)), "the night shift holds the 02:00 break"
    assert cal.idle_weekdays == {5, 6} and cal.idle_dates == {date(2026, 1, 7)}
    # Tuesday 06:00 CST to Thursday 06:00: Tuesday's three shifts (the night one to Wednesday 06:00), none on the
    # holiday Wednesday, and Thursday's early shift starts at the end.
    start = datetime(2026, 1, 6, 12, tzinfo=UTC)
    shifts = list(cal.shifts_between(datetime_to_us(start), datetime_to_us(start + timedelta(days=2))))
    assert [s.name for s in shifts] == ["early", "late", "night"]
    night_shift = shifts[2]
    assert night_shift.end_us == datetime_to_us(datetime(2026, 1, 7, 12, tzinfo=UTC))  # Wednesday 06:00 CST
    assert night_shift.breaks[0][0] == datetime_to_us(datetime(2026, 1, 7, 8, tzinfo=UTC))  # 02:00 CST


def test_a_run_that_joins_a_shift_plans_it_by_the_shift_not_by_the_run():
    """Live runs start inside a shift. When every such run planned its first shift from the first numbers of the
    machine's random stream, they all drew the same plan: assembly/line-1/asm-04 (the mixed demo's S7 machine)
    ran out of orders at 58 % of whichever shift a run joined, so the demo never had its OEE late in a shift."""
    layout = demo_layout()
    idle: dict[str, int] = defaultdict(int)
    joins = [START + timedelta(days=d, hours=h) for d in range(14) for h in (7, 19)]  # 7 h into each shift (58 %)
    for start in joins:
        model = PlantModel(layout, SimOptions(seed=1, analog_period_s=600), start=start,
                           end=start + timedelta(minutes=10))  # fmt: skip
        list(model.samples())
        for i in model.truth().states:
            if i.state_code in (State.NO_ORDER, State.PLANNED_MAINTENANCE):
                idle[i.cell_path] += 1
    # A shift runs out of orders with a chance of 5 % and starts with maintenance with 3 %: never half the time.
    assert max(idle.values(), default=0) <= len(joins) // 4, dict(idle)
