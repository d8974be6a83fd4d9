"""One simulated machine, event-driven: state intervals are drawn, not stepped, so 90 machine-days take seconds.

For each calendar segment (worked shift piece, break, no-shift time) the machine produces a time-ordered chunk of
samples ``(time_us, signal_index, value)``: state on change, counters when a unit completes, analog signals
(power, energy, vibration, temperature) every analog period. Power is a step function that changes at analog
ticks and state changes, and the energy meter is its exact integral. Ground truth (state intervals, per-shift
time elements, counts, energy) is accumulated here while the samples are produced.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Iterator

from simulator.layout import (
    SIG_ENERGY,
    SIG_GOOD,
    SIG_POWER,
    SIG_REJECT,
    SIG_STATE,
    SIG_TEMPERATURE,
    SIG_TOTAL,
    SIG_VIBRATION,
    SIGNALS_PER_MACHINE,
    MachineSpec,
)
from simulator.plan import MachinePlan, PlantedBreakdown
from simulator.shift_calendar import Segment, SegmentKind, Shift
from simulator.states import DELAY_CODES, DOWN_CODES, EVENT_WEIGHTS, RUNNING_CODES, SETUP_CODES, State
from simulator.truth import ShiftTruth, StateInterval, TruthEvent

Chunk = list[tuple[int, int, float]]
US = 1_000_000
_EVENT_CODES = [c for c, _ in EVENT_WEIGHTS]
_EVENT_CUM = [sum(w for _, w in EVENT_WEIGHTS[: i + 1]) for i in range(len(EVENT_WEIGHTS))]

# Fraction of running power drawn in each state (spindle, drives, coolant pumps, controls).
_POWER_FRACTION = {100: 1.0, 110: 0.75, 200: 0.3, 210: 0.3, 300: 0.22, 310: 0.12, 320: 0.08, 330: 0.04, 400: 0.4}
_STOP_POWER_FRACTION = 0.25
_PASSIVE_PIECE_US = 3600 * US
# Seconds between which an event's length is drawn uniformly (jams: lognormal, in _event_duration).
_UNIFORM_EVENT_S: dict[int, tuple[int, int]] = {State.STARVED: (60, 600), State.BLOCKED: (60, 600),
    State.REDUCED_SPEED: (600, 2400), State.TOOLING: (300, 1200), State.QUALITY_ADJUSTMENT: (180, 720),
    State.MECHANICAL_FAILURE: (1200, 5400), State.ELECTRICAL_FAILURE: (600, 3600)}  # fmt: skip


class MachineSim:
    def __init__(
        self,
        spec: MachineSpec,
        index: int,
        seed: int,
        *,
        analog_period_s: float,
        plan: MachinePlan,
        microstop_threshold_s: float = 120.0,
    ) -> None:
        self.spec = spec
        self.path = spec.path
        self.base = index * SIGNALS_PER_MACHINE
        self.rng = random.Random(f"{seed}/{spec.path}")
        self.seed = seed
        self.period_us = max(1000, round(analog_period_s * 1000) * 1000)
        self.plan = plan
        self.microstop_us = int(microstop_threshold_s * US)
        self.states: list[StateInterval] = []
        self.shifts: list[ShiftTruth] = []
        self.events: list[TruthEvent] = []
        self.code = -1
        self.code_since = 0
        self.power = 0.0
        self.power_t = -1
        self.energy = 0.0  # kWh integrated since the start
        self.energy_t = 0
        self.meter0 = round(self.rng.uniform(8_000.0, 60_000.0), 1)
        self.meter_sub = 0.0
        self.reset_done = plan.energy_reset_at_us is None
        self.temp = 24.0
        self.temp_t = 0
        self.phase = 0.0  # fraction of the current unit already done
        self.good = 0
        self.reject = 0
        self.next_tick = 0
        self.bearing_failed = plan.bearing is None
        self.breakdown_done = plan.breakdown is None
        self._shift: ShiftTruth | None = None
        self._shift_of: Shift | None = None
        self._planned: list[tuple[int, int, int]] = []

    # ---- public -------------------------------------------------------------------------------------------
    def start(self, start_us: int) -> None:
        self.energy_t = self.temp_t = start_us
        self.next_tick = -(-start_us // self.period_us) * self.period_us

    def segment(self, seg: Segment, out: Chunk, *, first: bool = False) -> Iterator[None]:
        """Simulate one calendar segment, appending its samples to ``out`` (unsorted). Yields after each state
        interval (passive time in pieces of at most an hour), when everything in ``out`` is earlier than what
        follows: the caller can take the samples so far and memory stays bounded even at a 1 s analog period."""
        if seg.shift is not None and seg.shift is not self._shift_of:
            self._begin_shift(seg.shift, seg.start_us)
        if seg.kind is SegmentKind.WORK:
            yield from self._work(seg.start_us, seg.end_us, out, first)
        else:
            code = State.NO_SHIFT if seg.kind is SegmentKind.NO_SHIFT else State.BREAK
            for a in range(seg.start_us, seg.end_us, _PASSIVE_PIECE_US):
                self._interval(a, min(a + _PASSIVE_PIECE_US, seg.end_us), code, out, first)
                first = False
                yield
        if self._shift is not None and self._shift_of is not None and seg.end_us >= self._shift_of.end_us:
            self.shifts.append(self._shift)
            self._shift = None

    def finish(self, end_us: int) -> None:
        """Close the open state interval at the end of the simulated range."""
        if self.code >= 0 and end_us > self.code_since:
            self.states.append(StateInterval(self.path, self.code_since, end_us, self.code))
            self.code_since = end_us

    # ---- calendar -----------------------------------------------------------------------------------------
    def _begin_shift(self, shift: Shift, seg_start: int) -> None:
        self._shift_of = shift
        joined = seg_start != shift.start_us  # the run starts inside this shift
        # Only shifts simulated from their very start get a truth row: a partial shift has no comparable totals.
        self._shift = None if joined else ShiftTruth(self.path, shift.start_us, shift.end_us, shift.name)
        self._planned = _shift_plan(self.rng, shift)  # drawn in any case: the rest of the run stays what it was
        if joined:  # mid-shift, as live runs are: the shift's own stream, else every such run drew the same plan
            self._planned = _shift_plan(random.Random(f"{self.seed}/{self.path}/{shift.start_us}"), shift)

    def _work(self, a: int, b: int, out: Chunk, first: bool) -> Iterator[None]:
        t = a
        for p0, p1, code in self._planned:
            if p1 <= t or p0 >= b:
                continue
            if p0 > t:
                yield from self._run_window(t, p0, out, first)
                first = False
            self._interval(max(t, p0), min(p1, b), code, out, first)
            yield
            first = False
            t = min(p1, b)
        if t < b:
            yield from self._run_window(t, b, out, first)

    def _run_window(self, a: int, b: int, out: Chunk, first: bool) -> Iterator[None]:
        """Worked time: running, interrupted by unplanned events; every event is cut at the window's end."""
        rng = self.rng
        t = a
        bearing = self.plan.bearing
        planted = self.plan.breakdown
        while t < b:
            if not self.breakdown_done and planted is not None and planted.at_us <= t:
                t = self._planted_breakdown(planted, t, b, out, first)
                yield
                first = False
                continue
            # Whatever runs or stops before a planted breakdown ends at its instant.
            cut = planted.at_us if not self.breakdown_done and planted is not None else b
            forced = False
            if not self.bearing_failed and bearing is not None and bearing.crossing_us <= t:
                forced = True
            else:
                t_evt = t + max(US, _ms(rng.expovariate(1.0 / 1500.0)))
                if not self.bearing_failed and bearing is not None and t < bearing.crossing_us < t_evt:
                    t_evt, forced = bearing.crossing_us, True
                if t_evt > cut:
                    t_evt, forced = cut, False
                end = min(t_evt, b)
                self._interval(t, end, State.RUNNING, out, first)
                yield
                first = False
                t = end
                if t >= b:
                    break
                if t == cut:
                    continue  # the planted breakdown begins (top of the loop)
            if forced:
                self.bearing_failed = True
                if self.code == State.MECHANICAL_FAILURE:
                    continue  # the bearing is replaced during the breakdown already under way
                code, dur = int(State.MECHANICAL_FAILURE), rng.uniform(3 * 3600, 5 * 3600)
                self.events.append(TruthEvent("bearing_failure", self.path, t, {"stop_code": int(code)}))
            else:
                code = _EVENT_CODES[_pick(rng.random())]
                dur = _event_duration(rng, code)
            end = min(t + max(US, _ms(dur)), b, cut)
            self._interval(t, end, code, out, first)
            yield
            first = False
            t = end

    def _planted_breakdown(self, planted: PlantedBreakdown, t: int, b: int, out: Chunk, first: bool) -> int:
        """The planted stop from ``t`` (its instant, or the first worked instant after it), cut at the window's
        end; the ground truth records when it really began and ended."""
        self.breakdown_done = True
        end = min(t + planted.duration_us, b)
        self.events.append(TruthEvent("planted_breakdown", self.path, t,
                                      {"stop_code": int(planted.code), "end_us": end, "duration_s": (end - t) / US}))
        self._interval(t, end, planted.code, out, first)
        return end

    # ---- one state interval ---------------------------------------------------------------------------------
    def _interval(self, a: int, b: int, code: int, out: Chunk, first: bool) -> None:
        if b <= a:
            return
        base = self.base
        if code != self.code:
            if self.code >= 0:
                self.states.append(StateInterval(self.path, self.code_since, a, self.code))
            self.code, self.code_since = code, a
            out.append((a, base + SIG_STATE, float(code)))
            self._set_power(a, out)
        if first:
            self._emit_counters(a, out)
            self._emit_analogs(a, out)
            self.next_tick = max(self.next_tick, a + 1)
            self.next_tick = -(-self.next_tick // self.period_us) * self.period_us
        good0, reject0, energy0 = self.good, self.reject, self.energy
        if code in RUNNING_CODES:
            self._produce(a, b, code, out)
        period = self.period_us
        t = self.next_tick
        while t < b:
            self._integrate(t)
            if self.power_t != t:
                self._set_power(t, out)
            self._emit_analogs(t, out)
            t += period
        self.next_tick = t
        self._integrate(b)
        sh = self._shift
        if sh is not None:
            dur = (b - a) / US
            if code in RUNNING_CODES:
                sh.apt_s += dur
            elif code in DOWN_CODES:
                sh.down_s += dur
                if b - a < self.microstop_us:
                    sh.microstop_s += dur
                    sh.microstop_count += 1
            elif code in DELAY_CODES:
                sh.delay_s += dur
            elif code in SETUP_CODES:
                sh.setup_s += dur
            else:
                sh.planned_down_s += dur
            if code not in (State.BREAK, State.NO_ORDER, State.PLANNED_MAINTENANCE, State.NO_SHIFT):
                sh.planned_busy_s += dur
            sh.good_count += self.good - good0
            sh.reject_count += self.reject - reject0
            sh.total_count += (self.good - good0) + (self.reject - reject0)
            sh.energy_kwh += self.energy - energy0

    def _produce(self, a: int, b: int, code: int, out: Chunk) -> None:
        rng = self.rng
        spec = self.spec
        factor = rng.uniform(1.05, 1.2) * (1.5 if code == State.REDUCED_SPEED else 1.0)
        cycle_us = spec.ideal_cycle_time_s * factor * US
        t = a + (1.0 - self.phase) * cycle_us
        base = self.base
        reject_rate = spec.reject_rate
        append = out.append
        good, reject = self.good, self.reject
        last = -1
        while t < b:
            tu = int(t) // 1000 * 1000
            if tu <= last or tu <= a:  # keep completions strictly increasing on whole milliseconds
                tu = max(last, a) + 1000
            if tu >= b:
                break
            last = tu
            if rng.random() < reject_rate:
                reject += 1
                append((tu, base + SIG_REJECT, float(reject)))
            else:
                good += 1
                append((tu, base + SIG_GOOD, float(good)))
            append((tu, base + SIG_TOTAL, float(good + reject)))
            t += cycle_us
        self.phase = min(max(1.0 - (t - b) / cycle_us, 0.0), 0.999)
        self.good, self.reject = good, reject

    # ---- analog signals ---------------------------------------------------------------------------------------
    def _integrate(self, t: int) -> None:
        if t > self.energy_t:
            self.energy += self.power * (t - self.energy_t) / 3.6e9  # kW·µs → kWh
            self.energy_t = t

    def _set_power(self, t: int, out: Chunk) -> None:
        self._integrate(t)
        frac = _POWER_FRACTION.get(self.code, _STOP_POWER_FRACTION)
        value = self.spec.run_kw * frac * (1.0 + self.rng.gauss(0.0, 0.015))
        plan = self.plan
        if plan.saving_at_us is not None and t >= plan.saving_at_us:
            value *= 1.0 - plan.saving_fraction
        self.power = round(max(value, 0.0), 3)
        self.power_t = t
        out.append((t, self.base + SIG_POWER, self.power))

    def _emit_counters(self, t: int, out: Chunk) -> None:
        base = self.base
        out.append((t, base + SIG_GOOD, float(self.good)))
        out.append((t, base + SIG_REJECT, float(self.reject)))
        out.append((t, base + SIG_TOTAL, float(self.good + self.reject)))

    def _emit_analogs(self, t: int, out: Chunk) -> None:
        rng = self.rng
        base = self.base
        if not self.reset_done and t >= (self.plan.energy_reset_at_us or 0):
            self.reset_done = True
            before = self.meter0 + self.energy - self.meter_sub
            self.meter_sub = self.meter0 + self.energy
            self.events.append(TruthEvent("energy_meter_reset", self.path, t, {"value_before": before}))
        out.append((t, base + SIG_ENERGY, self.meter0 + self.energy - self.meter_sub))
        code = self.code
        deg = self._degradation(t)
        vb = self.spec.vibration_base
        if code in RUNNING_CODES:
            level = (vb if code == State.RUNNING else vb * 0.85) + deg
            vib = level + rng.gauss(0.0, 0.05 * vb)
        elif code in (State.BREAK, State.NO_SHIFT, State.NO_ORDER, State.PLANNED_MAINTENANCE):
            vib = 0.12 + rng.gauss(0.0, 0.02)
        else:
            vib = 0.35 + rng.gauss(0.0, 0.04)
        out.append((t, base + SIG_VIBRATION, round(max(vib, 0.02), 3)))
        target = self._temperature_target(code, deg)
        dt = (t - self.temp_t) / US
        self.temp += (target - self.temp) * (1.0 - math.exp(-dt / 1200.0))
        self.temp_t = t
        out.append((t, base + SIG_TEMPERATURE, round(self.temp + rng.gauss(0.0, 0.15), 2)))

    def _temperature_target(self, code: int, deg: float) -> float:
        kw = self.spec.run_kw
        if code == State.RUNNING:
            return 30.0 + kw + 1.5 * deg
        if code == State.REDUCED_SPEED:
            return 30.0 + 0.7 * kw + 1.5 * deg
        if code == State.NO_SHIFT:
            return 24.0
        return 28.0

    def _degradation(self, t: int) -> float:
        """Extra running vibration of a failing bearing: exponential from the onset, threshold at the crossing."""
        bearing = self.plan.bearing
        if bearing is None or self.bearing_failed or t < bearing.onset_us:
            return 0.0
        x = (t - bearing.onset_us) / (bearing.crossing_us - bearing.onset_us)
        k = bearing.steepness
        return (bearing.threshold - self.spec.vibration_base) * (math.exp(k * x) - 1.0) / (math.exp(k) - 1.0)


def _shift_plan(rng: random.Random, shift: Shift) -> list[tuple[int, int, int]]:
    """The shift's planned stops (start µs, end µs, state code): maintenance at its start, orders running out."""
    planned: list[tuple[int, int, int]] = []
    length = shift.end_us - shift.start_us
    if rng.random() < 0.03:  # planned maintenance at the start of the shift
        end = shift.start_us + _ms(rng.uniform(3600, 3 * 3600))
        planned.append((shift.start_us, end, State.PLANNED_MAINTENANCE))
    if rng.random() < 0.05:  # the order book runs dry for the rest of the shift
        t0 = shift.start_us + int(length * rng.uniform(0.5, 0.9)) // 60_000_000 * 60_000_000
        planned.append((t0, shift.end_us, State.NO_ORDER))
    return planned


def _pick(u: float) -> int:
    return min(bisect.bisect_right(_EVENT_CUM, u * _EVENT_CUM[-1]), len(_EVENT_CUM) - 1)


def _event_duration(rng: random.Random, code: int) -> float:
    """Seconds an event lasts: jams are mostly microstops, failures take a technician."""
    if code == State.JAM:
        return rng.lognormvariate(math.log(45.0), 0.7)
    low, high = _UNIFORM_EVENT_S.get(code, (900, 2100))  # else setup / changeover
    return rng.uniform(low, high)


def _ms(seconds: float) -> int:
    """Seconds → µs on whole milliseconds (OPC-UA, MQTT epoch_ms and Grafana all carry milliseconds)."""
    return round(seconds * 1000.0) * 1000
