"""The result-table declaration (analytics/tables.py) against a migrated database, and its derived KPI columns."""

from __future__ import annotations

import pandas as pd
import psycopg
import pytest

from analytics import store
from analytics.rollups import rolled
from analytics.run import run_plant
from analytics.tables import PER_CELL, TABLES, Derived, ResultTable, Roll, plain, ratio, summed
from datafactory.db import registry
from datafactory.db.connect import connect
from datafactory.db.samples import copy_rows, rows_from_us

pytestmark = pytest.mark.integration


def schema_mismatch(conn: psycopg.Connection, table: ResultTable) -> tuple[set[str], set[str]]:
    """(declared but not in the database, in the database but not declared) for one table."""
    rows = conn.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
                        " AND table_name = %s", (table.name,)).fetchall()
    actual = {r[0] for r in rows}
    declared = {*table.written, *table.database_fills}
    return declared - actual, actual - declared


def test_every_declared_table_matches_the_migrated_schema(db_url: str) -> None:
    with connect(db_url) as conn:
        problems = {name: schema_mismatch(conn, t) for name, t in TABLES.items()}
    assert {name: p for name, p in problems.items() if p != (set(), set())} == {}


def test_the_check_fails_on_a_column_the_migrations_lack_or_one_they_add(db_url: str) -> None:
    oee = TABLES["oee"]
    with connect(db_url) as conn:
        scrap = Derived("scrap_rate", ratio("reject_count", "total_count"))
        extra = ResultTable("oee", oee.columns, derived=(*oee.derived, scrap), database_fills=oee.database_fills)
        assert schema_mismatch(conn, extra) == ({"scrap_rate"}, set())
        short = ResultTable("oee", oee.columns[:-1], derived=oee.derived, database_fills=oee.database_fills)
        assert schema_mismatch(conn, short) == (set(), {oee.columns[-1].name})


def test_every_per_cell_table_is_filled_by_a_cell_result() -> None:
    from analytics.cell_results import CellResults

    fields = set(CellResults.__dataclass_fields__)
    assert [t.name for t in PER_CELL] == ["oee", "downtime", "energy"]
    assert all(t.cell_field in fields for t in PER_CELL)


def test_a_derived_column_is_written_and_recomputed_from_the_sums(db_url: str) -> None:
    """The derived KPI of a rolled-up row is the ratio of its sums, not the mean of the hour ratios."""
    table = ResultTable("kpi_probe", plain("k", "good", "total"), derived=(Derived("yield", ratio("good", "total")),))
    hours = pd.DataFrame({"k": [1, 1], "good": [9.0, 1.0], "total": [10.0, 10.0]})
    rolled = hours.groupby("k", as_index=False)[["good", "total"]].sum()
    with connect(db_url) as conn:
        conn.execute("CREATE TABLE kpi_probe (k integer, good float8, total float8, yield float8)")
        assert table.write(conn, pd.concat([rolled, pd.DataFrame({"k": [2], "good": [0.0], "total": [0.0]})]),
                           where="true", params=()) == 2
        got = conn.execute("SELECT k, yield FROM kpi_probe ORDER BY k").fetchall()
    assert got == [(1, pytest.approx(0.5)), (2, None)]  # (9 + 1) / 20, and NULL where total is 0


def test_every_column_of_a_rolled_up_table_says_how_it_rolls_up() -> None:
    for t in PER_CELL:
        assert all(c.roll is not Roll.NONE for c in t.columns), t.name
        assert {"cell_id", "time", "time_end"} <= set(t.group_keys)
    with pytest.raises(ValueError, match=r"no roll-up rule for column.*scrap"):
        ResultTable("probe", (*summed("good"), *plain("scrap")), cell_field="oee")


def test_energy_hours_roll_up_as_declared() -> None:
    """Two hours of one cell into one day: kWh, cost and counts summed, the peak the larger one, the source the
    first, and the derived KPIs (avg kW, load factor, kWh per unit) recomputed from the day's sums."""
    table = TABLES["energy"]
    t0 = pd.Timestamp("2026-03-01 16:00", tz="UTC")
    hours = pd.DataFrame({c: [0.0, 0.0] for c in table.aggregates})
    hours = hours.assign(cell_id=[7, 7], time=[t0, t0 + pd.Timedelta(hours=1)], shift_name=["", ""],
                         time_end=[t0 + pd.Timedelta(hours=1), t0 + pd.Timedelta(hours=2)], kwh=[30.0, 10.0],
                         cost=[3.0, 1.5], good_count=[8.0, 2.0], peak_kw_15min=[50.0, 20.0],
                         source=["meter", "meter"])
    day = pd.DataFrame({"time": [t0], "time_end": [t0 + pd.Timedelta(days=1)], "shift_name": [""]})
    row = table.complete(rolled(table, hours, day)).iloc[0]
    assert (row["kwh"], row["cost"], row["good_count"], row["peak_kw_15min"]) == (40.0, 4.5, 10.0, 50.0)
    assert row["source"] == "meter" and row["time_end"] == t0 + pd.Timedelta(days=1)
    assert row["avg_kw"] == pytest.approx(40.0 / 24)
    assert row["load_factor"] == pytest.approx(40.0 / 24 / 50.0)
    assert row["sec_kwh_per_unit"] == pytest.approx(4.0)  # 40 kWh / 10 units, not the mean of 30/8 and 10/2


def test_idle_share_is_written_per_hour_and_rolled_up_from_the_sums(db_url: str) -> None:
    """The KPI added in docs/analytics.md ("Adding a KPI"): idle kWh / kWh, on hour rows and on the shift, day and
    month rows and the line view, where it is the ratio of the summed kWh — not the mean of the hours' shares."""
    t0 = pd.Timestamp("2026-03-02 18:00", tz="UTC")  # Tuesday 02:00 in Asia/Shanghai: in the night shift, no break
    us = [int((t0 + pd.Timedelta(minutes=15 * i)).value // 1000) for i in range(9)]
    with connect(db_url) as conn:
        plant = registry.upsert_plant(conn, "acme", "dg-1", timezone="Asia/Shanghai")
        cell = registry.upsert_cell(conn, plant, "a", "l", "m", attributes={"ideal_cycle_time_s": 30})
        state = registry.upsert_signal(conn, plant, cell, "state", meaning="machine_state")
        meter = registry.upsert_signal(conn, plant, cell, "kwh", meaning="energy_kwh")
        # 40 kWh in the first hour (10 per quarter), 80 in the second (20 per quarter).
        readings = [0.0, 10, 20, 30, 40, 60, 80, 100, 120]
        # Running, starved (not producing) from :30 of the first hour and from :45 of the second, running again.
        states = {0: 100.0, 2: 200.0, 4: 100.0, 7: 200.0, 8: 100.0}
        copy_rows(conn, rows_from_us([(meter, u, v, 0) for u, v in zip(us, readings, strict=True)]
                                     + [(state, us[i], v, 0) for i, v in states.items()]))
        conn.commit()
        p = store.plants(conn)[0]
    run_plant(db_url, p, t0, t0 + pd.Timedelta(hours=2))
    with connect(db_url) as conn:
        query = "SELECT period || ' ' || to_char(time AT TIME ZONE 'UTC', 'HH24:MI'), idle_share FROM energy"
        got: dict[str, float] = dict(conn.execute(query).fetchall())
        kwh: dict[str, float] = dict(conn.execute("SELECT period, kwh FROM energy WHERE period <> 'hour'").fetchall())
        line = conn.execute("SELECT idle_share FROM energy_line WHERE period = 'day'").fetchone()
    assert got.pop("hour 18:00") == pytest.approx(20 / 40)  # 18:30–19:00 idle: 2 quarters of 10 kWh
    assert got.pop("hour 19:00") == pytest.approx(20 / 80)  # 19:45–20:00 idle: 1 quarter of 20 kWh
    assert kwh == {"shift": pytest.approx(120), "day": pytest.approx(120), "month": pytest.approx(120)}
    assert sorted(got) == ["day 16:00", "month 16:00", "shift 12:00"]  # plant-local midnights and 20:00
    assert all(v == pytest.approx(40 / 120) for v in got.values())  # (20 + 20) / (40 + 80), not (0.5 + 0.25) / 2
    assert line == (pytest.approx(40 / 120),)


def test_a_machine_without_an_ideal_cycle_time_gets_no_oee_rows_and_does_not_fail_the_plant(
    db_url: str, caplog: pytest.LogCaptureFixture,
) -> None:
    """Bug: a machine_state signal without ``ideal_cycle_time_s`` wrote NULL into oee.ideal_production_s (NOT NULL)
    and failed the plant's whole run. Performance (ISO 22400-2) needs the ideal cycle time, so that machine gets no
    OEE rows, a warning and a place in the run summary; its downtime and the other machine's OEE are still stored."""
    t0 = pd.Timestamp("2026-03-02 18:00", tz="UTC")
    us = [int((t0 + pd.Timedelta(minutes=15 * i)).value // 1000) for i in range(5)]
    with connect(db_url) as conn:
        plant = registry.upsert_plant(conn, "acme", "dg-2", timezone="Asia/Shanghai")
        known = registry.upsert_cell(conn, plant, "a", "l", "known", attributes={"ideal_cycle_time_s": 30})
        unknown = registry.upsert_cell(conn, plant, "a", "l", "unknown", attributes={})
        rows = []
        for cell in (known, unknown):
            state = registry.upsert_signal(conn, plant, cell, "state", meaning="machine_state")
            rows += [(state, us[0], 100.0, 0), (state, us[2], 200.0, 0), (state, us[3], 100.0, 0)]
        copy_rows(conn, rows_from_us(rows))
        conn.commit()
        p = next(q for q in store.plants(conn) if q.site == "dg-2")
    with caplog.at_level("WARNING", logger="analytics.run"):
        summary = run_plant(db_url, p, t0, t0 + pd.Timedelta(hours=1))
    assert summary.no_ideal_cycle_time == [unknown]
    assert f"cells [{unknown}]" in caplog.text and "ideal_cycle_time_s" in caplog.text
    with connect(db_url) as conn:
        oee_cells = {r[0] for r in conn.execute("SELECT DISTINCT cell_id FROM oee WHERE plant_id = %s",
                                                (plant,)).fetchall()}
        down = conn.execute("SELECT sum(duration_s) FROM downtime WHERE plant_id = %s AND cell_id = %s"
                            " AND period = 'hour'", (plant, unknown)).fetchone()
    assert oee_cells == {known}
    assert down is not None and down[0] == pytest.approx(15 * 60)  # starved 18:30–18:45
