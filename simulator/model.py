"""The plant model: every machine plus the utility meter, deterministic for a seed, producing a time-ordered
stream of signal changes and the ground truth of what happened.

    model = PlantModel(demo_layout(), SimOptions(seed=1), start=..., end=...)
    for ch in model.changes():          # Change(cell_path, signal, time_us, value), time-ordered
        ...
    truth = model.truth()                # state intervals, per-shift truth, planted events

Pure Python, no I/O. Each machine draws from its own ``random.Random`` seeded by (seed, cell path), so a
machine's behaviour does not depend on how many other machines the plant has.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import NamedTuple

from datafactory.contract.sample import datetime_to_us
from simulator.layout import SIG_POWER, PlantLayout
from simulator.machine import Chunk, MachineSim
from simulator.plan import BearingFault, MachinePlan, PlantedBreakdown
from simulator.shift_calendar import ShiftCalendar
from simulator.truth import GroundTruth, StateInterval, TruthEvent

DAY_US = 86_400_000_000
_CHUNK = 4096  # samples per machine chunk: bounds memory whatever the analog period


class Change(NamedTuple):
    cell_path: str
    signal: str
    time_us: int
    value: float


@dataclass(frozen=True, slots=True)
class SimOptions:
    seed: int = 1
    analog_period_s: float = 5.0  # power, energy, vibration, temperature sample period (simulated seconds)
    meter_period_s: float | None = None  # utility meter period; default 10 s, or the analog period if longer
    energy_saving_at: datetime | None = None  # all power × (1 − fraction) from this time
    energy_saving_fraction: float = 0.10
    bearing_fault_cell: str | None = None  # 'area/line/cell' whose bearing degrades
    bearing_onset: datetime | None = None  # default: chosen so the threshold is crossed inside the range
    bearing_days_to_threshold: float | None = None  # default: drawn between 5 and 10 days
    bearing_threshold: float = 7.1  # mm/s, ISO 10816 zone C/D boundary for medium machines
    energy_reset_cell: str | None = None  # machine whose energy meter is reset to zero (meter exchange)
    energy_reset_at: datetime | None = None
    microstop_threshold_s: float = 120.0
    # A short stop planted at a known instant (truth event 'planted_breakdown' with its real start and end), so a
    # test can time what follows — alert firing, repeat, resolution — in seconds instead of a bearing's hours.
    breakdown_cell: str | None = None
    breakdown_at: datetime | None = None
    breakdown_s: float = 60.0
    breakdown_code: int = 510  # mechanical failure
    calendar: ShiftCalendar = field(default_factory=ShiftCalendar)


class PlantModel:
    def __init__(
        self, layout: PlantLayout, options: SimOptions, *, start: datetime, end: datetime | None = None
    ) -> None:
        self.layout = layout
        if options.calendar.timezone != layout.timezone and options.calendar == ShiftCalendar():
            # The default calendar follows the plant's own time zone (the config's), not the demo's.
            options = replace(options, calendar=replace(options.calendar, timezone=layout.timezone))
        self.options = options
        if options.breakdown_cell is not None and options.breakdown_cell not in {m.path for m in layout.machines}:
            raise ValueError(f"breakdown_cell {options.breakdown_cell!r} is not a machine of the layout")
        self.start_us = datetime_to_us(start)
        self.end_us = datetime_to_us(end) if end is not None else None
        if self.end_us is not None and self.end_us <= self.start_us:
            raise ValueError(f"end {end} must be after start {start}")
        self.signal_keys = layout.signal_keys()
        self.meter_base = len(layout.machines) * 8
        self._events: list[TruthEvent] = []
        self.machines = [
            MachineSim(
                spec,
                i,
                options.seed,
                analog_period_s=options.analog_period_s,
                plan=self._plan_for(spec.path),
                microstop_threshold_s=options.microstop_threshold_s,
            )
            for i, spec in enumerate(layout.machines)
        ]
        self._meter_state: _MeterState | None = None

    # ---- planted events ------------------------------------------------------------------------------------
    def _plan_for(self, path: str) -> MachinePlan:
        o = self.options
        saving_us = datetime_to_us(o.energy_saving_at) if o.energy_saving_at else None
        if saving_us is not None and path == self.layout.machines[0].path:
            self._events.append(
                TruthEvent("energy_saving", "", saving_us, {"fraction": o.energy_saving_fraction, "scope": "plant"})
            )
        bearing = None
        if o.bearing_fault_cell == path:
            bearing = self._bearing_fault(path)
        reset_us = None
        if o.energy_reset_cell == path:
            if o.energy_reset_at is None:
                raise ValueError("energy_reset_cell needs energy_reset_at")
            reset_us = datetime_to_us(o.energy_reset_at)
        breakdown = None
        if o.breakdown_cell == path:
            if o.breakdown_at is None or o.breakdown_s <= 0:
                raise ValueError("breakdown_cell needs breakdown_at and a positive breakdown_s")
            breakdown = PlantedBreakdown(datetime_to_us(o.breakdown_at), round(o.breakdown_s * 1e6), o.breakdown_code)
        return MachinePlan(saving_us, o.energy_saving_fraction, bearing, reset_us, breakdown)

    def _bearing_fault(self, path: str) -> BearingFault:
        o = self.options
        rng = random.Random(f"{o.seed}/bearing/{path}")
        days = o.bearing_days_to_threshold or round(rng.uniform(5.0, 10.0), 3)
        span_us = int(days * DAY_US)
        if o.bearing_onset is not None:
            onset = datetime_to_us(o.bearing_onset)
        elif self.end_us is None:
            onset = self.start_us - int(span_us * 0.7)  # live: already degrading, crosses within a few days
        else:
            onset = max(self.start_us, self.end_us - span_us - int(rng.uniform(1.5, 3.0) * DAY_US))
        onset = onset // 1000 * 1000
        crossing = onset + span_us // 1000 * 1000
        spec = next(m for m in self.layout.machines if m.path == path)
        self._events.append(
            TruthEvent(
                "bearing_degradation_onset",
                path,
                onset,
                {"baseline_mm_s": spec.vibration_base, "threshold_mm_s": o.bearing_threshold, "days": days},
            )
        )
        self._events.append(
            TruthEvent("bearing_failure_threshold", path, crossing, {"threshold_mm_s": o.bearing_threshold})
        )
        return BearingFault(onset, crossing, o.bearing_threshold)

    # ---- streams ---------------------------------------------------------------------------------------
    def machine_chunks(self, index: int) -> Iterator[Chunk]:
        """Time-ordered chunks ``(time_us, signal_index, value)`` of one machine, a few thousand samples each."""
        sim = self.machines[index]
        sim.start(self.start_us)
        first = True
        out: Chunk = []
        for seg in self.options.calendar.segments(self.start_us, self.end_us):
            for _ in sim.segment(seg, out, first=first):
                first = False
                if len(out) >= _CHUNK:
                    chunk = sorted(out)
                    out.clear()  # the segment generator keeps appending to this same list
                    yield chunk
        yield sorted(out)
        if self.end_us is not None:
            sim.finish(self.end_us)

    def samples(self) -> Iterator[tuple[int, int, float]]:
        """All samples ``(time_us, signal_index, value)`` in time order, utility meter included.

        ``signal_keys[signal_index]`` is the (cell_path, signal) of a sample.
        """
        streams = [itertools.chain.from_iterable(self.machine_chunks(i)) for i in range(len(self.machines))]
        merged = heapq.merge(*streams)
        yield from self._with_meter(merged)

    def changes(self) -> Iterator[Change]:
        keys = self.signal_keys
        for t, idx, value in self.samples():
            cell_path, signal = keys[idx]
            yield Change(cell_path, signal, t, value)

    def _with_meter(self, merged: Iterator[tuple[int, int, float]]) -> Iterator[tuple[int, int, float]]:
        o = self.options
        meter_s = o.meter_period_s if o.meter_period_s is not None else max(10.0, o.analog_period_s)
        period = max(1000, round(meter_s * 1000) * 1000)
        n = len(self.machines)
        power_index = {i * 8 + SIG_POWER: i for i in range(n)}
        state = _MeterState(n, self.start_us, random.Random(f"{o.seed}/meter").uniform(200_000.0, 900_000.0))
        self._meter_state = state
        saving_us = datetime_to_us(o.energy_saving_at) if o.energy_saving_at else None
        base_kw = self.layout.meter_base_kw
        p_idx, e_idx = self.meter_base, self.meter_base + 1
        tick = self.start_us
        end = self.end_us
        for item in merged:
            t = item[0]
            while tick < t:
                kw, kwh = state.reading(tick, base_kw, saving_us, o.energy_saving_fraction)
                yield (tick, p_idx, kw)
                yield (tick, e_idx, kwh)
                tick = (tick // period + 1) * period
            yield item
            m = power_index.get(item[1])
            if m is not None:
                state.power_change(m, t, item[2])
        while end is not None and tick < end:
            kw, kwh = state.reading(tick, base_kw, saving_us, o.energy_saving_fraction)
            yield (tick, p_idx, kw)
            yield (tick, e_idx, kwh)
            tick = (tick // period + 1) * period

    # ---- ground truth ----------------------------------------------------------------------------------
    def truth(self) -> GroundTruth:
        """Ground truth accumulated so far (complete once the streams are exhausted)."""
        gt = GroundTruth(events=list(self._events))
        for m in self.machines:
            gt.states.extend(m.states)
            gt.shifts.extend(m.shifts)
            gt.events.extend(m.events)
        gt.events.sort(key=lambda e: (e.time_us, e.kind, e.cell_path))
        return gt

    def truth_until(self, end_us: int) -> GroundTruth:
        """Ground truth of [start, end_us) while a live run is under way (the model may have simulated ahead):
        state intervals clipped at end_us, the open one included; only shifts that ended; machine events before
        end_us; planted events always."""
        gt = GroundTruth(events=list(self._events))
        for m in self.machines:
            for s in m.states:
                if s.start_us < end_us:
                    gt.states.append(StateInterval(s.cell_path, s.start_us, min(s.end_us, end_us), s.state_code))
            if m.code >= 0 and m.code_since < end_us:
                gt.states.append(StateInterval(m.path, m.code_since, end_us, m.code))
            gt.shifts.extend(s for s in m.shifts if s.shift_end_us <= end_us)
            gt.events.extend(e for e in m.events if e.time_us < end_us)
        gt.events.sort(key=lambda e: (e.time_us, e.kind, e.cell_path))
        return gt


class _MeterState:
    """The utility meter sees the plant's total power: every machine's plus an unmetered base load."""

    def __init__(self, machines: int, start_us: int, meter0: float) -> None:
        self.p = [0.0] * machines
        self.t = [start_us] * machines
        self.e = [0.0] * machines
        self.start_us = start_us
        self.meter0 = meter0

    def power_change(self, m: int, t: int, kw: float) -> None:
        self.e[m] += self.p[m] * (t - self.t[m]) / 3.6e9
        self.p[m] = kw
        self.t[m] = t

    def reading(self, t: int, base_kw: float, saving_us: int | None, fraction: float) -> tuple[float, float]:
        factor = 1.0 - fraction if saving_us is not None and t >= saving_us else 1.0
        kw = base_kw * factor + sum(self.p)
        saved_us = max(0, t - max(saving_us, self.start_us)) if saving_us is not None else 0
        base_kwh = base_kw * ((t - self.start_us) - fraction * saved_us) / 3.6e9
        machines_kwh = sum(e + p * (t - t0) / 3.6e9 for e, p, t0 in zip(self.e, self.p, self.t, strict=True))
        return round(kw, 3), self.meter0 + base_kwh + machines_kwh
