"""The plant's shift calendar, as the simulated machines follow it.

Day shift 08:00–20:00 with a break 12:00–12:30, night shift 20:00–08:00 with a break 00:00–00:30, plant local
time. A shift belongs to the calendar day on which it starts; shifts starting on a Sunday are not worked, so the
plant is idle from Sunday 08:00 to Monday 08:00. ``segments`` cuts time into worked shift pieces, breaks and
no-shift time, which is all the machine model needs. ``from_config`` follows a plant config's
``analytics.calendar`` instead (any number of shifts, breaks, non-working weekdays and dates), so the simulated
plant works the shifts its analytics expect.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import IntEnum
from zoneinfo import ZoneInfo

from datafactory.config import analytics as analytics_config
from datafactory.contract.sample import datetime_to_us


class SegmentKind(IntEnum):
    WORK = 0
    BREAK = 1
    NO_SHIFT = 2


@dataclass(frozen=True, slots=True)
class ShiftDef:
    name: str
    start: time
    hours: float
    breaks: tuple[tuple[time, float], ...]  # (local start, minutes)


@dataclass(frozen=True, slots=True)
class Shift:
    name: str
    start_us: int
    end_us: int
    breaks: tuple[tuple[int, int], ...]  # (start_us, end_us) inside the shift


@dataclass(frozen=True, slots=True)
class Segment:
    start_us: int
    end_us: int
    kind: SegmentKind
    shift: Shift | None  # the worked shift this segment belongs to (None for no-shift time)


DEFAULT_SHIFTS = (
    ShiftDef("day", time(8, 0), 12.0, ((time(12, 0), 30.0),)),
    ShiftDef("night", time(20, 0), 12.0, ((time(0, 0), 30.0),)),
)


@dataclass(frozen=True, slots=True)
class ShiftCalendar:
    timezone: str = "Asia/Shanghai"
    shifts: tuple[ShiftDef, ...] = DEFAULT_SHIFTS
    idle_weekdays: frozenset[int] = frozenset({6})  # Monday is 0; shifts starting on these days are not worked
    idle_dates: frozenset[date] = frozenset()  # plant-local dates (holidays) whose shifts are not worked

    def shifts_between(self, start_us: int, end_us: int | None) -> Iterator[Shift]:
        """Worked shifts overlapping [start_us, end_us) in time order (endless when end_us is None)."""
        tz = ZoneInfo(self.timezone)
        day = _local_date(start_us, tz) - timedelta(days=1)
        while True:
            for d in self.shifts:
                s_local = datetime.combine(day, d.start, tzinfo=tz)
                s_us = datetime_to_us(s_local)
                e_us = datetime_to_us(s_local + timedelta(hours=d.hours))
                if end_us is not None and s_us >= end_us:
                    return
                if e_us <= start_us or day.weekday() in self.idle_weekdays or day in self.idle_dates:
                    continue
                breaks = []
                for b_time, minutes in d.breaks:
                    b_day = day if b_time >= d.start else day + timedelta(days=1)
                    b_us = datetime_to_us(datetime.combine(b_day, b_time, tzinfo=tz))
                    breaks.append((b_us, b_us + int(minutes * 60_000_000)))
                yield Shift(d.name, s_us, e_us, tuple(breaks))
            day += timedelta(days=1)

    def segments(self, start_us: int, end_us: int | None) -> Iterator[Segment]:
        """A gap-free partition of [start_us, end_us) into work, break and no-shift segments."""
        t = start_us
        for shift in self.shifts_between(start_us, end_us):
            if shift.start_us > t:
                yield from _clip(t, shift.start_us, SegmentKind.NO_SHIFT, None, end_us)
            cursor = max(t, shift.start_us)
            for b0, b1 in shift.breaks:
                if b1 <= cursor:
                    continue
                yield from _clip(cursor, b0, SegmentKind.WORK, shift, end_us)
                yield from _clip(max(cursor, b0), b1, SegmentKind.BREAK, shift, end_us)
                cursor = b1
            yield from _clip(cursor, shift.end_us, SegmentKind.WORK, shift, end_us)
            t = shift.end_us
        if end_us is not None and t < end_us:
            yield Segment(t, end_us, SegmentKind.NO_SHIFT, None)


def from_config(calendar: analytics_config.ShiftCalendar, timezone: str) -> ShiftCalendar:
    """The simulated calendar of a plant config's ``analytics.calendar``: each daily break belongs to the shift
    it falls in (cut at the shift's end), a shift whose end is at or before its start ends the next day."""
    shifts = []
    for sh in calendar.shifts:
        start = analytics_config.clock_minutes(sh.start)
        length = (analytics_config.clock_minutes(sh.end) - start) % 1440 or 1440
        breaks = []
        for b in calendar.breaks:
            b0 = analytics_config.clock_minutes(b.start)
            offset = (b0 - start) % 1440
            if offset < length:
                minutes = min((analytics_config.clock_minutes(b.end) - b0) % 1440, length - offset)
                breaks.append((offset, time(b0 // 60 % 24, b0 % 60), float(minutes)))
        breaks.sort()
        shifts.append(ShiftDef(sh.name, time(start // 60 % 24, start % 60), length / 60.0,
                               tuple((t, m) for _, t, m in breaks)))
    return ShiftCalendar(timezone, tuple(shifts), frozenset(calendar.non_working_weekdays),
                         frozenset(calendar.non_working_dates))


def _clip(a: int, b: int, kind: SegmentKind, shift: Shift | None, end_us: int | None) -> Iterator[Segment]:
    if end_us is not None:
        b = min(b, end_us)
    if b > a:
        yield Segment(a, b, kind, shift)


def _local_date(us: int, tz: ZoneInfo) -> date:
    from datafactory.contract.sample import us_to_datetime

    return us_to_datetime(us).astimezone(tz).date()
