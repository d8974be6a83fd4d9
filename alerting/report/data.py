"""The numbers of a shift hand-over report, read from the tables analytics and the alerting service write.

A shift belongs to the plant-local day it starts on (as in analytics' calendar). Everything is read for exactly
that shift's rows (``period = 'shift'`` and ``time`` = the shift's start): OEE and its time elements per machine
and line, the downtime reasons (Pareto), scrap, plant energy per good unit, alerts of the shift and data gaps
(``unknown_s``: time without data). OEE of a line or the plant is computed from summed time elements (ISO 22400),
never by averaging machine percentages; the previous shift and the same shift a week earlier are read likewise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from datafactory.config.analytics import clock_minutes
from datafactory.config.models import PlantConfig
from datafactory.errors import DataFactoryError


class ReportError(DataFactoryError):
    """A report cannot be made (unknown shift, no computed data)."""


@dataclass(frozen=True)
class ShiftWindow:
    name: str
    day: date  # plant-local day the shift starts on
    start: datetime  # UTC
    end: datetime


def shift_window(cfg: PlantConfig, name: str, day: date) -> ShiftWindow:
    shifts = {s.name: s for s in cfg.analytics.calendar.shifts}
    if name not in shifts:
        raise ReportError(f"no shift {name!r} in the plant's calendar (shifts: {', '.join(shifts)})")
    tz = ZoneInfo(cfg.enterprise.timezone)
    s, e = clock_minutes(shifts[name].start), clock_minutes(shifts[name].end)
    if e <= s:
        e += 24 * 60

    def at(minutes: int) -> datetime:
        extra, rest = divmod(minutes, 24 * 60)
        local = datetime.combine(day + timedelta(days=extra), time(rest // 60, rest % 60), tzinfo=tz)
        return local.astimezone(UTC)

    return ShiftWindow(name, day, at(s), at(e))


def last_completed(cfg: PlantConfig, name: str, now: datetime) -> ShiftWindow:
    """The newest shift of that name that has ended by ``now`` and was worked (as in analytics, a shift starting on
    a non-working weekday or date does not exist)."""
    cal = cfg.analytics.calendar
    local_today = now.astimezone(ZoneInfo(cfg.enterprise.timezone)).date()
    for back in range(0, 15):
        day = local_today - timedelta(days=back)
        if day.weekday() in cal.non_working_weekdays or day in cal.non_working_dates:
            continue
        w = shift_window(cfg, name, day)
        if w.end <= now:
            return w
    raise ReportError(f"no worked shift {name!r} has ended in the last two weeks")


@dataclass
class Oee:
    pbt_s: float = 0.0
    apt_s: float = 0.0
    ideal_s: float = 0.0
    good: float = 0.0
    total: float = 0.0
    reject: float = 0.0
    unknown_s: float = 0.0
    adot_s: float = 0.0  # unplanned down (breakdowns, jams …)
    asut_s: float = 0.0  # setup / changeover
    adet_s: float = 0.0  # delays: starved, blocked
    stops: int = 0

    def add(self, other: Oee) -> None:
        for k in ("pbt_s", "apt_s", "ideal_s", "good", "total", "reject", "unknown_s", "adot_s", "asut_s", "adet_s",
                  "stops"):
            setattr(self, k, getattr(self, k) + getattr(other, k))

    @property
    def availability(self) -> float | None:
        return self.apt_s / self.pbt_s if self.pbt_s else None

    @property
    def performance(self) -> float | None:
        return self.ideal_s / self.apt_s if self.apt_s else None

    @property
    def quality(self) -> float | None:
        return self.good / self.total if self.total else None

    @property
    def oee(self) -> float | None:
        a, p, q = self.availability, self.performance, self.quality
        return a * p * q if a is not None and p is not None and q is not None else None


@dataclass
class MachineRow:
    line: str  # area/line
    machine: str  # area/line/cell
    name: str
    oee: Oee


@dataclass
class Report:
    plant_label: str
    plant_name: str
    timezone: str
    window: ShiftWindow
    machines: list[MachineRow]
    lines: dict[str, Oee]
    plant: Oee
    previous: Oee | None  # the shift before
    last_week: Oee | None  # the same shift a week earlier
    downtime: list[dict[str, Any]]  # reason, category, seconds, stops, share, cumulative
    energy: dict[str, float | None]
    alerts: list[dict[str, Any]]
    gaps: list[dict[str, Any]]  # machine, unknown_s
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


OEE_ROWS = """
SELECT c.area || '/' || c.line, c.area || '/' || c.line || '/' || c.cell, c.name, o.pbt_s, o.apt_s,
       o.ideal_production_s, o.good_count, o.total_count, o.reject_count, o.unknown_s, o.adot_s, o.asut_s,
       o.adet_s, o.stop_count
FROM oee o JOIN cells c ON c.id = o.cell_id
WHERE o.plant_id = %s AND o.period = 'shift' AND o.time = %s
ORDER BY c.area, c.line, c.cell
"""


def _oee(row: tuple[Any, ...]) -> Oee:
    pbt, apt, ideal, good, total, reject, unknown, adot, asut, adet = (float(v or 0) for v in row[:10])
    return Oee(pbt, apt, ideal, good, total, reject, unknown, adot, asut, adet, int(row[10] or 0))


def _plant_oee(conn: psycopg.Connection, plant_id: int, start: datetime) -> Oee | None:
    rows = conn.execute(OEE_ROWS, (plant_id, start)).fetchall()
    if not rows:
        return None
    total = Oee()
    for r in rows:
        total.add(_oee(r[3:]))
    return total


def load(conn: psycopg.Connection, plant_id: int, cfg: PlantConfig, window: ShiftWindow) -> Report:
    rows = conn.execute(OEE_ROWS, (plant_id, window.start)).fetchall()
    if not rows:
        raise ReportError(f"no OEE for shift {window.name} of {window.day} ({window.start:%Y-%m-%d %H:%M}Z): "
                          "has `datafactory analytics run` computed it?")
    machines = [MachineRow(r[0], r[1], r[2], _oee(r[3:])) for r in rows]
    lines: dict[str, Oee] = {}
    plant = Oee()
    for m in machines:
        lines.setdefault(m.line, Oee()).add(m.oee)
        plant.add(m.oee)
    prev = conn.execute("SELECT max(time) FROM oee WHERE plant_id = %s AND period = 'shift' AND time < %s",
                        (plant_id, window.start)).fetchone()
    previous = _plant_oee(conn, plant_id, prev[0]) if prev and prev[0] else None
    last_week = _plant_oee(conn, plant_id, window.start - timedelta(days=7))
    down = conn.execute(
        "SELECT reason, category, sum(duration_s), sum(stops) FROM downtime WHERE plant_id = %s"
        " AND period = 'shift' AND time = %s AND duration_s > 0 GROUP BY reason, category ORDER BY 3 DESC, 1",
        (plant_id, window.start)).fetchall()
    all_s = sum(float(r[2]) for r in down) or 1.0
    downtime, cum = [], 0.0
    for reason, category, seconds, stops in down:
        cum += float(seconds)
        downtime.append({"reason": reason or category, "category": category, "seconds": float(seconds),
                         "stops": int(stops), "share": float(seconds) / all_s, "cumulative": cum / all_s})
    e = conn.execute("SELECT kwh, cost, peak_kw_15min, good_count, sec_kwh_per_unit FROM energy_plant"
                     " WHERE plant_id = %s AND period = 'shift' AND time = %s", (plant_id, window.start)).fetchone()
    energy = dict(zip(("kwh", "cost", "peak_kw_15min", "good_count", "kwh_per_good_unit"),
                      (None if v is None else float(v) for v in (e or (None,) * 5)), strict=True))
    alerts = [dict(zip(("id", "rule", "subject", "severity", "status", "since", "fired_at", "acknowledged_at",
                        "acknowledged_by", "resolved_at"), r, strict=True)) for r in conn.execute(
        "SELECT id, rule_id, subject, severity, status, since, fired_at, acknowledged_at, acknowledged_by,"
        " resolved_at FROM alert_instances WHERE plant_id = %s AND fired_at IS NOT NULL AND fired_at < %s"
        " AND (resolved_at IS NULL OR resolved_at >= %s) ORDER BY fired_at, id",
        (plant_id, window.end, window.start)).fetchall()]
    gaps = [{"machine": m.machine, "unknown_s": m.oee.unknown_s} for m in machines if m.oee.unknown_s > 0]
    return Report(f"{cfg.enterprise.id}/{cfg.site.id}", cfg.enterprise.name, cfg.enterprise.timezone, window,
                  machines, lines, plant, previous, last_week, downtime, energy, alerts, gaps)


def alert_state(a: dict[str, Any], window: ShiftWindow) -> str:
    """What happened to an alert during the shift: resolved / acknowledged / open at hand-over."""
    if a["resolved_at"] is not None and a["resolved_at"] < window.end:
        return "resolved"
    if a["acknowledged_at"] is not None and a["acknowledged_at"] < window.end:
        return "acknowledged"
    return "open"
