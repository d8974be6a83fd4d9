"""Periods in plant-local time: hours, shifts, days and months, returned as UTC intervals.

Shifts come from the shift calendar; a shift belongs to the plant-local day it starts on, and shifts starting on a
non-working weekday or date do not exist. Local midnight and month starts are computed in the plant's time zone so
DST zones get 23/25-hour days right.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pandas as pd

from datafactory.config.analytics import ShiftCalendar, clock_minutes

PERIODS = ("hour", "shift", "day", "month")


def local_days(tz: str, start: pd.Timestamp, end: pd.Timestamp) -> list[date]:
    """Plant-local dates touching [start, end), with one day of margin on each side for shifts crossing midnight."""
    zone = ZoneInfo(tz)
    first = start.tz_convert(zone).date() - timedelta(days=1)
    last = end.tz_convert(zone).date() + timedelta(days=1)
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def local_instant(day: date, minutes: int, tz: str) -> pd.Timestamp:
    """UTC instant of plant-local ``day`` + ``minutes`` after midnight (24:00 is the next midnight)."""
    extra, minutes = divmod(minutes, 24 * 60)
    local = datetime.combine(day + timedelta(days=extra), time(minutes // 60, minutes % 60), tzinfo=ZoneInfo(tz))
    return pd.Timestamp(local).tz_convert("UTC")


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="datetime64[ns, UTC]" if c.startswith("time") else object)
                         for c in columns})


def shift_periods(cal: ShiftCalendar, tz: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Shifts overlapping [start, end): ``time``, ``time_end``, ``shift_name`` — whole shifts, not clipped."""
    rows = []
    off_dates = set(cal.non_working_dates)
    for day in local_days(tz, start, end):
        if day.weekday() in cal.non_working_weekdays or day in off_dates:
            continue
        for shift in cal.shifts:
            s, e = clock_minutes(shift.start), clock_minutes(shift.end)
            if e <= s:
                e += 24 * 60
            t0, t1 = local_instant(day, s, tz), local_instant(day, e, tz)
            if t1 > start and t0 < end:
                rows.append((t0, t1, shift.name))
    if not rows:
        return _empty(["time", "time_end", "shift_name"])
    return pd.DataFrame(rows, columns=["time", "time_end", "shift_name"]).sort_values("time").reset_index(drop=True)


def calendar_periods(period: str, tz: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Whole hours, days or months (plant-local) overlapping [start, end)."""
    local_start = start.tz_convert(tz)
    local_end = end.tz_convert(tz)
    if period == "hour":
        first = local_start.floor("h", ambiguous=True, nonexistent="shift_forward")
        edges = pd.date_range(first.tz_convert("UTC"), end.ceil("h") + pd.Timedelta(hours=1), freq="h")
    elif period == "day":
        first = local_start.normalize()
        edges = pd.date_range(first, local_end.normalize() + pd.Timedelta(days=1), freq="D").tz_convert("UTC")
    elif period == "month":
        first = local_start.normalize().replace(day=1)
        edges = pd.date_range(first, local_end.normalize() + pd.offsets.MonthBegin(1), freq="MS").tz_convert("UTC")
    else:
        raise ValueError(f"unknown period {period!r}; expected one of {PERIODS}")
    out = pd.DataFrame({"time": edges[:-1], "time_end": edges[1:]})
    out = out[(out["time_end"] > start) & (out["time"] < end)].reset_index(drop=True)
    out["shift_name"] = ""
    return out


def periods(period: str, cal: ShiftCalendar, tz: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    if period == "shift":
        return shift_periods(cal, tz, start, end)
    return calendar_periods(period, tz, start, end)
