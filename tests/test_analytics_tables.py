"""The result-table declaration (analytics/tables.py) against a migrated database, and its derived KPI columns."""

from __future__ import annotations

import pandas as pd
import psycopg
import pytest

from analytics.tables import PER_CELL, TABLES, Derived, ResultTable, ratio
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
        extra = ResultTable("oee", oee.columns, derived=(Derived("scrap_rate", ratio("reject_count", "total_count")),),
                            database_fills=oee.database_fills)
        assert schema_mismatch(conn, extra) == ({"scrap_rate"}, set())
        short = ResultTable("oee", oee.columns[:-1], database_fills=oee.database_fills)
        assert schema_mismatch(conn, short) == (set(), {oee.columns[-1]})


def test_every_per_cell_table_is_filled_by_a_cell_result() -> None:
    from analytics.cell_results import CellResults

    fields = set(CellResults.__dataclass_fields__)
    assert [t.name for t in PER_CELL] == ["oee", "downtime", "energy"]
    assert all(t.cell_field in fields for t in PER_CELL)


def test_a_derived_column_is_written_and_recomputed_from_the_sums(db_url: str) -> None:
    """The derived KPI of a rolled-up row is the ratio of its sums, not the mean of the hour ratios."""
    table = ResultTable("kpi_probe", ("k", "good", "total"), derived=(Derived("yield", ratio("good", "total")),))
    hours = pd.DataFrame({"k": [1, 1], "good": [9.0, 1.0], "total": [10.0, 10.0]})
    rolled = hours.groupby("k", as_index=False)[["good", "total"]].sum()
    with connect(db_url) as conn:
        conn.execute("CREATE TABLE kpi_probe (k integer, good float8, total float8, yield float8)")
        assert table.write(conn, pd.concat([rolled, pd.DataFrame({"k": [2], "good": [0.0], "total": [0.0]})]),
                           where="true", params=()) == 2
        got = conn.execute("SELECT k, yield FROM kpi_probe ORDER BY k").fetchall()
    assert got == [(1, pytest.approx(0.5)), (2, None)]  # (9 + 1) / 20, and NULL where total is 0
