"""The result-table declaration (analytics/tables.py) against a migrated database, and its derived KPI columns."""

from __future__ import annotations

import pandas as pd
import psycopg
import pytest

from analytics.rollups import rolled
from analytics.tables import PER_CELL, TABLES, Derived, ResultTable, Roll, plain, ratio, summed
from datafactory.db.connect import connect

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
