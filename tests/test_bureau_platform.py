"""Connected plants contribute their metered electricity to the bureau's statistics."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest

from bureau.statistics import registry
from bureau.statistics.facts import enterprise_frame
from bureau.statistics.platform_energy import sync_platform_energy
from bureau.statistics.reports_import import ReportRow, write_reports
from datafactory.db.connect import connect
from tests.test_bureau_import import record

pytestmark = pytest.mark.integration
MONTH = date(2026, 3, 1)


def one(cur: psycopg.Cursor) -> tuple[Any, ...]:
    row = cur.fetchone()
    assert row is not None
    return row


def _plant(conn: psycopg.Connection, name: str) -> int:
    return int(one(conn.execute("INSERT INTO plants (enterprise, site) VALUES (%s, 'main') RETURNING id", (name,)))[0])


def _meter(conn: psycopg.Connection, plant: int, area: str, cell: str) -> tuple[int, int]:
    cell_id = int(one(conn.execute(
        "INSERT INTO cells (plant_id, area, line, cell) VALUES (%s, %s, 'main', %s) RETURNING id", (plant, area, cell)
    ))[0])
    signal_id = int(one(conn.execute(
        "INSERT INTO signals (plant_id, cell_id, name, meaning, unit) VALUES (%s, %s, 'energy', 'energy_kwh', 'kWh')"
        " RETURNING id", (plant, cell_id)))[0])
    return cell_id, signal_id


def test_metered_electricity_replaces_reported(db_url: str) -> None:
    with connect(db_url) as conn:
        metered_plant = _plant(conn, "metered")
        results_plant = _plant(conn, "results")
        _, main = _meter(conn, metered_plant, "utilities", "main-meter")
        _, machine = _meter(conn, metered_plant, "machining", "cnc-01")  # behind the main meter: not added
        cell_r, _ = _meter(conn, results_plant, "assembly", "asm-01")
        start = datetime(2026, 2, 28, 16, tzinfo=UTC)  # 1 March 00:00 Asia/Shanghai
        rows = []
        for hour in range(0, 31 * 24, 6):
            t = start + timedelta(hours=hour)
            rows.append((t, main, 5000.0 + hour * 10 - (3000.0 if hour >= 400 else 0.0)))  # meter reset at 400 h
            rows.append((t, machine, 100.0 + hour))
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO samples (time, signal_id, value) VALUES (%s, %s, %s)", rows)
        for day in range(31):
            conn.execute(
                "INSERT INTO energy (plant_id, cell_id, period, time, time_end, kwh, idle_kwh, kwh_critical, kwh_peak,"
                " kwh_flat, kwh_valley, cost, cost_critical, cost_peak, cost_flat, cost_valley, tce, good_count,"
                " source) VALUES (%s, %s, 'day', %s, %s, 200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'meter')",
                (results_plant, cell_r, start + timedelta(days=day), start + timedelta(days=day + 1)),
            )
        a = registry.upsert(conn, registry.EnterpriseRecord(**{**record(1).__dict__, "plant_id": metered_plant}),
                            date(2025, 1, 1))
        b = registry.upsert(conn, registry.EnterpriseRecord(**{**record(2).__dict__, "plant_id": results_plant}),
                            date(2025, 1, 1))
        c = registry.upsert(conn, record(3), date(2025, 1, 1))
        write_reports(conn, [ReportRow(e, MONTH, 100, 95, 96, 10, 1.0, 999.0) for e in (a, b, c)], "test")
        conn.commit()
        assert sync_platform_energy(conn, MONTH) == 2
        sources: dict[int, str] = dict(
            conn.execute("SELECT enterprise_id, source FROM bureau_platform_energy").fetchall()
        )
        facts = enterprise_frame(conn, MONTH).set_index("enterprise_id")
    # Main meter: 6-hourly steps of 60 kWh over the month, minus the one step lost at the reset.
    steps = len(range(0, 31 * 24, 6)) - 1
    assert facts.loc[a, "electricity_kwh"] == pytest.approx(60.0 * (steps - 1))
    assert facts.loc[b, "electricity_kwh"] == pytest.approx(200.0 * 31)
    assert facts.loc[c, "electricity_kwh"] == pytest.approx(999.0)  # not connected: as reported
    assert sources == {a: "samples", b: "energy"}
    assert bool(facts.loc[a, "operating"]) and bool(facts.loc[a, "connected"]) and not bool(facts.loc[c, "connected"])
