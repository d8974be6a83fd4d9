"""A time zone in which a real-time run starting now falls inside a worked shift, so a test of a plant that must
run on the wall clock (Modbus and S7 values are stamped when polled) checks OEE whatever day and hour it runs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from simulator import PlantLayout, PlantModel, SimOptions
from simulator.states import PLANNED_CODES

# Local hours inside the calendar's day shift (08-20), away from its start, its 12:00 break and its end.
_WORKED_HOURS = (9, 10, 14, 15, 16)


def working_timezone(now: datetime, accept: Callable[[str], bool] = lambda _tz: True) -> str:
    """A fixed-offset zone in which ``now`` is inside a worked day shift (shifts starting on a Sunday are not
    worked) and which ``accept`` takes."""
    for local_hour in _WORKED_HOURS:
        offset = local_hour - now.hour
        if offset < -12:
            offset += 24
        elif offset > 14:
            offset -= 24
        if (now + timedelta(hours=offset)).weekday() == 6:
            continue
        tz = f"Etc/GMT{-offset:+d}" if offset else "UTC"  # Etc/GMT-8 is UTC+8
        if accept(tz):
            return tz
    raise AssertionError(f"no zone puts {now:%Y-%m-%d %H:%M} UTC in a worked shift that the test accepts")


def planned_stops(layout: PlantLayout, start: datetime, seconds: float, *, seed: int = 1) -> dict[str, set[int]]:
    """Machine → the planned-stop codes (break, no order, maintenance, no shift) the simulator gives it in
    [start, start + seconds): machines in it have no planned production time, hence no availability."""
    model = PlantModel(layout, SimOptions(seed=seed, analog_period_s=60), start=start,
                       end=start + timedelta(seconds=seconds))  # fmt: skip
    for _ in model.samples():
        pass
    out: dict[str, set[int]] = {}
    for interval in model.truth().states:
        if interval.state_code in PLANNED_CODES:
            out.setdefault(interval.cell_path, set()).add(interval.state_code)
    return out
