"""A database scene in which every alert rule kind of the demo plant's defaults has something to say, and one
thing it must not say for each: written into the same tables the other services write (samples, oee, alerts,
energy, energy_baseline_daily, gateway_status, dataset_alerts, ingest_health, dead_letters)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg.types.json import Jsonb

from datafactory.config.models import PlantConfig
from datafactory.db.registry import register_config

DOWN, RUNNING = "machining/line-1/cnc-01", "machining/line-1/cnc-02"
LOW_OEE, GOOD_OEE = "machining/line-1/cnc-03", "machining/line-1/cnc-04"
PDM_CELL, PDM_CRITICAL_CELL = "assembly/line-1/asm-01", "assembly/line-1/asm-02"
METER = "utilities/main/main-meter"

# The subjects each default rule of the demo plant must report in this scene (and nothing else).
EXPECTED = {
    "machine-down": {DOWN},
    "oee-low-shift": {LOW_OEE},
    "availability-low": {LOW_OEE},
    "pdm-alert": {f"{PDM_CELL}/vibration", f"{PDM_CRITICAL_CELL}/temperature"},
    "peak-demand": {"plant"},
    "specific-energy": {"plant"},
    "gateway-offline": {"gateway:gw-dead", "gateway:gw-1/source:opcua-main"},
    "dataset-late": {"dataset:samples"},
    "ingest-health": {"worker:ingest-slow/lag", "worker:ingest-conflict/conflicts", "dead-letters"},
}

# Rules beyond the defaults: performance and quality, rolling and per shift, and a second machine-down rule that
# also counts setups (none in the scene), with what they must report.
MORE_RULES = [
    {"id": "performance-low", "kind": "oee_below", "metric": "performance", "target": 0.9, "window_h": 4},
    {"id": "quality-low-shift", "kind": "oee_below", "metric": "quality", "target": 0.95, "window": "shift"},
    {"id": "quality-low", "kind": "oee_below", "metric": "quality", "target": 0.8},
    {"id": "stopped-long", "kind": "machine_down", "categories": ["unplanned_stop", "setup"], "for_s": 1800},
]
MORE_EXPECTED = {"performance-low": {LOW_OEE}, "quality-low-shift": {LOW_OEE}}


@dataclass(frozen=True)
class Scene:
    plant_id: int
    signals: dict[str, int]
    cells: dict[str, int]
    now: datetime


def _oee_row(conn: psycopg.Connection, plant_id: int, cell_id: int, period: str, t0: datetime, hours: float,  # noqa: PLR0917
             apt_fraction: float, shift: str = "", *, performance: float = 1.0, quality: float = 1.0) -> None:
    pbt = hours * 3600
    apt = pbt * apt_fraction
    total = apt * performance / 45.0  # ideal cycle time 45 s: ideal production time = performance × apt
    good = total * quality
    conn.execute(
        "INSERT INTO oee (plant_id, cell_id, period, time, time_end, shift_name, calendar_s, planned_down_s, pbt_s,"
        " apt_s, adet_s, asut_s, adot_s, unknown_s, microstop_s, microstop_count, stop_count, changeover_count,"
        " total_count, good_count, reject_count, ideal_cycle_time_s, ideal_production_s) VALUES (%s, %s, %s, %s,"
        " %s, %s, %s, 0, %s, %s, 0, 0, %s, 0, 0, 0, 1, 0, %s, %s, %s, 45, %s)",
        (plant_id, cell_id, period, t0, t0 + timedelta(hours=hours), shift, pbt, pbt, apt, pbt - apt, total, good,
         total - good, total * 45.0))


def _energy_row(conn: psycopg.Connection, plant_id: int, cell_id: int, t0: datetime, peak_kw: float) -> None:
    conn.execute(
        "INSERT INTO energy (plant_id, cell_id, period, time, time_end, kwh, idle_kwh, kwh_critical, kwh_peak,"
        " kwh_flat, kwh_valley, cost, cost_critical, cost_peak, cost_flat, cost_valley, peak_kw_15min, avg_kw, tce,"
        " good_count, source) VALUES (%s, %s, 'hour', %s, %s, %s, 0, 0, %s, 0, 0, 0, 0, 0, 0, 0, %s, %s, 0, 0,"
        " 'meter')", (plant_id, cell_id, t0, t0 + timedelta(hours=1), peak_kw * 0.8, peak_kw * 0.8, peak_kw,
                      peak_kw * 0.8))


def plant(conn: psycopg.Connection, cfg: PlantConfig, now: datetime) -> Scene:
    """Write the scene as it is at ``now`` (all data times before it); the caller commits."""
    signals = register_config(conn, cfg)
    plant_id = int(conn.execute("SELECT id FROM plants WHERE enterprise = %s AND site = %s",
                                (cfg.enterprise.id, cfg.site.id)).fetchone()[0])  # type: ignore[index]
    cells = {f"{a}/{li}/{c}": int(i) for i, a, li, c in conn.execute(
        "SELECT id, area, line, cell FROM cells WHERE plant_id = %s", (plant_id,)).fetchall()}
    states = [(DOWN, -40, 100), (DOWN, -25, 510),  # down for 25 min: past the default rule's 10 min
              (RUNNING, -40, 510), (RUNNING, -30, 100),  # was down, runs again
              (LOW_OEE, -40, 100), (GOOD_OEE, -40, 100),
              (PDM_CELL, -40, 300)]  # a planned break is not "down"
    for cell, minutes, code in states:
        conn.execute("INSERT INTO samples (time, signal_id, value) VALUES (%s, %s, %s)",
                     (now + timedelta(minutes=minutes), signals[f"{cell}/state"], code))
    hour = now.replace(minute=0, second=0, microsecond=0)
    for h in (1, 2, 3):  # three computed hours in the 4-hour window, and a shift that ended an hour ago
        _oee_row(conn, plant_id, cells[LOW_OEE], "hour", hour - timedelta(hours=h), 1, 0.4, performance=0.85,
                 quality=0.9)
        _oee_row(conn, plant_id, cells[GOOD_OEE], "hour", hour - timedelta(hours=h), 1, 0.95)
    for cell, fraction, quality in ((LOW_OEE, 0.5, 0.9), (GOOD_OEE, 0.9, 0.99)):
        _oee_row(conn, plant_id, cells[cell], "shift", hour - timedelta(hours=13), 12, fraction, "day",
                 quality=quality)
    for cell, signal, severity, status in ((PDM_CELL, "vibration", "warning", "raised"),
                                           (PDM_CRITICAL_CELL, "temperature", "critical", "updated"),
                                           (GOOD_OEE, "vibration", "critical", "cleared")):
        conn.execute(
            "INSERT INTO alerts (plant_id, cell_id, signal_id, kind, time, status, severity, updated_at, message,"
            " value, rul_p50_h) VALUES (%s, %s, %s, 'pdm_drift', %s, %s, %s, %s, %s, 7.5, 40)",
            (plant_id, cells[cell], signals[f"{cell}/{signal}"], now - timedelta(hours=2), status, severity, now,
             f"{signal} drifting upwards (EWMA above its control limit)"))
    _energy_row(conn, plant_id, cells[METER], hour - timedelta(hours=2), 420)
    _energy_row(conn, plant_id, cells[METER], hour - timedelta(hours=1), 655)  # above the contracted 500 kW
    day = (now - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    for d, actual in ((day - timedelta(days=5), 140.0), (day - timedelta(days=1), 102.0), (day, 118.0)):
        conn.execute(  # the newest two days: +2 % and +18 % over the expectation; only the second counts
            "INSERT INTO energy_baseline_daily (plant_id, time, time_end, phase, actual_kwh, production,"
            " expected_kwh, pi_low_kwh, pi_high_kwh, savings_kwh, cusum_kwh) VALUES (%s, %s, %s, 'reporting',"
            " %s, 1000, 100, 90, 110, %s, 0)", (plant_id, d, d + timedelta(days=1), actual, 100 - actual))
    for gw, online, age_s, sources in (("gw-1", True, 5, {"opcua-main": {"state": "disconnected"},
                                                          "mqtt-meter": {"state": "connected"}}),
                                       ("gw-dead", False, 900, {}), ("gw-ok", True, 5, {})):
        conn.execute("INSERT INTO gateway_status (plant_id, gateway, online, updated_at, status)"
                     " VALUES (%s, %s, %s, %s, %s)",
                     (plant_id, gw, online, now - timedelta(seconds=age_s),
                      Jsonb({"sources": sources})))
    conn.execute("INSERT INTO dataset_alerts (dataset, opened_at, newest, due) VALUES ('samples', %s, %s, %s)",
                 (now - timedelta(minutes=20), now - timedelta(minutes=30), now - timedelta(minutes=25)))
    conn.execute("INSERT INTO dataset_alerts (dataset, status, opened_at, resolved_at) VALUES ('oee', 'resolved',"
                 " %s, %s)", (now - timedelta(days=1), now - timedelta(hours=20)))
    for worker, lag, conflicts in (("ingest-slow", 300.0, 0), ("ingest-ok", 2.0, 0), ("ingest-conflict", 1.0, 3)):
        conn.execute("INSERT INTO ingest_health (worker, updated_at, started_at, lag_s, conflicts_total)"
                     " VALUES (%s, %s, %s, %s, %s)",
                     (worker, now - timedelta(minutes=5), now - timedelta(hours=1), lag, conflicts))
    conn.execute(
        "INSERT INTO dead_letters (received_at, topic, plant_id, reason, detail)"
        " SELECT %s - make_interval(secs => g), 'df/v1/x', %s, 'malformed_json', 'test' FROM generate_series(1, 150) g",
        (now, plant_id))
    return Scene(plant_id, signals, cells, now)
