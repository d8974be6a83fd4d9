"""Registry history and report import against a real PostgreSQL: every error with row and column, all or nothing."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bureau.statistics import registry
from bureau.statistics.reports_import import import_registry, import_reports
from datafactory.codes.credit_code import check_character
from datafactory.db.connect import connect


def one(cur: psycopg.Cursor) -> tuple[Any, ...]:
    row = cur.fetchone()
    assert row is not None
    return row


pytestmark = pytest.mark.integration

HEADER = "credit_code,month,output_value,sales_value,revenue,employment,energy_tce,electricity_kwh\n"


def code(n: int) -> str:
    body = f"9144190000000{n:04d}"
    return body + check_character(body)


def record(n: int, industry: str = "3484", *, employees: int = 120, revenue: float = 5000.0
           ) -> registry.EnterpriseRecord:
    return registry.EnterpriseRecord(
        code(n), f"测试企业{n}有限公司", industry, "长安镇", "", "private", employees, revenue
    )


def _counts(conn) -> tuple[int, int]:
    reports = one(conn.execute("SELECT count(*) FROM bureau_reports"))[0]
    revisions = one(conn.execute("SELECT count(*) FROM bureau_report_revisions"))[0]
    return reports, revisions


def test_import_reports_every_error_with_row_and_column(db_url: str, tmp_path: Path) -> None:
    with connect(db_url) as conn:
        for n in (1, 2):
            registry.upsert(conn, record(n), date(2025, 1, 1))
        conn.commit()
        corrupted = code(1)[:17] + ("0" if code(1)[17] != "0" else "1")
        lines = [
            f"{code(1)},2026-03,100,95,96,120,12.5,80000",  # row 2: good
            f"{corrupted},2026-03,100,95,96,120,12.5,80000",  # row 3: check character
            f"{code(2)},2026-13,100,95,96,120,12.5,80000",  # row 4: month
            f"{code(2)},2026-03,abc,95,96,120,12.5,80000",  # row 5: not a number
            f"{code(2)},2026-04,100,95,96,120,-5,80000",  # row 6: negative
            f"{code(3)},2026-03,100,95,96,120,12.5,80000",  # row 7: not registered
            f"{code(1)},2026-03,101,95,96,120,12.5,80000",  # row 8: duplicate of row 2
            f"{code(2)},2026-05,100,95,96,12.5,12.5,80000",  # row 9: employment not whole
            f"{code(2)},2026-06,100,95,96,120,12.5,",  # row 10: missing value
        ]
        path = tmp_path / "reports.csv"
        path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
        before = _counts(conn)
        report = import_reports(conn, path)
        found = {(p.row, p.column) for p in report.problems}
        assert found == {(3, "credit_code"), (4, "month"), (5, "output_value"), (6, "energy_tce"),
                         (7, "credit_code"), (8, "month"), (9, "employment"), (10, "electricity_kwh")}
        messages = {(p.row, p.column): p.message for p in report.problems}
        assert "check character" in messages[(3, "credit_code")]
        assert "not in the enterprise registry" in messages[(7, "credit_code")]
        assert "duplicate of row 2" in messages[(8, "month")]
        assert report.rows_loaded == 0 and _counts(conn) == before == (0, 0)
        assert one(conn.execute("SELECT count(*) FROM bureau_imports"))[0] == 0

        partial = import_reports(conn, path, good_rows_only=True)
        assert partial.rows_loaded == 1 and len(partial.problems) == 8
        assert _counts(conn) == (1, 1)
        logged = conn.execute("SELECT rows_loaded, jsonb_array_length(errors) FROM bureau_imports").fetchone()
        assert logged == (1, 8)


def test_revision_replaces_figures_and_keeps_history(db_url: str, tmp_path: Path) -> None:
    with connect(db_url) as conn:
        registry.upsert(conn, record(1), date(2025, 1, 1))
        conn.commit()
        first = tmp_path / "first.csv"
        first.write_text(HEADER + f"{code(1)},2026-03,100,95,96,120,12.5,80000\n", encoding="utf-8")
        second = tmp_path / "second.csv"
        second.write_text(HEADER + f"{code(1)},2026-03,110,99,98,121,13.0,81000\n", encoding="utf-8")
        assert import_reports(conn, first).ok
        revised = import_reports(conn, second)
        assert revised.ok and revised.revisions == 1
        row = conn.execute("SELECT revision, output_value FROM bureau_reports").fetchone()
        assert row == (2, 110.0)
        history = conn.execute(
            "SELECT revision, output_value, source FROM bureau_report_revisions ORDER BY revision"
        ).fetchall()
        assert history == [(1, 100.0, "import:first.csv"), (2, 110.0, "import:second.csv")]


def test_xlsx_import_reports_row_and_column(db_url: str, tmp_path: Path) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(HEADER.strip().split(","))
    sheet.append([code(1), "2026-03", 100, 95, 96, 120, 12.5, 80000])
    sheet.append([code(1), "2026-04", 100, 95, 96, 120, "n/a", 80000])
    path = tmp_path / "reports.xlsx"
    book.save(path)
    with connect(db_url) as conn:
        registry.upsert(conn, record(1), date(2025, 1, 1))
        conn.commit()
        report = import_reports(conn, path)
        assert [(p.row, p.column) for p in report.problems] == [(3, "energy_tce")]
        assert _counts(conn) == (0, 0)


def test_missing_and_unknown_columns_are_file_errors(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("credit_code,month,output,sales_value\n", encoding="utf-8")
    with connect(db_url) as conn:
        report = import_reports(conn, path)
    found = {(p.row, p.column) for p in report.problems}
    assert (1, "output_value") in found and (1, "output") in found and (1, "energy_tce") in found


def test_registry_history_and_derived_size(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "registry.csv"
    path.write_text(
        "credit_code,name,industry_code,town,park,ownership,employees,annual_revenue,valid_from\n"
        f"{code(1)},甲公司,C3484,长安镇,,private,1200,45000,2025-01\n"
        f"{code(2)},乙公司,4411,长安镇,,private,50,500,2025-01\n"
        f"{code(3)},丙公司,3484,长安镇,,nobody,50,500,2025-01\n",
        encoding="utf-8",
    )
    with connect(db_url) as conn:
        report = import_registry(conn, path, valid_from=date(2025, 1, 1))
        assert {(p.row, p.column) for p in report.problems} == {(3, "industry_code"), (4, "ownership")}
        assert one(conn.execute("SELECT count(*) FROM bureau_enterprises"))[0] == 0
        partial = import_registry(conn, path, valid_from=date(2025, 1, 1), good_rows_only=True)
        assert partial.rows_loaded == 1
        registry.upsert(conn, record(1, employees=800, revenue=30000), date(2026, 1, 1))
        conn.commit()
        hist = registry.history(conn, code(1))
    assert [(h["valid_from"], h["valid_to"], h["size_class"]) for h in hist] == [
        (date(2025, 1, 1), date(2026, 1, 1), "large"), (date(2026, 1, 1), None, "medium")]
    assert hist[0]["industry_code"] == "3484" and hist[1]["above_designated"] is True


def test_cli_import_prints_row_and_column_and_fails(db_url: str, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bureau.cli import bureau

    with connect(db_url) as conn:
        registry.upsert(conn, record(1), date(2025, 1, 1))
        conn.commit()
    path = tmp_path / "r.csv"
    path.write_text(HEADER + f"{code(1)},2026-03,100,95,96,120,x,80000\n", encoding="utf-8")
    env = {"DATAFACTORY_DATABASE_URL": db_url}
    result = CliRunner().invoke(bureau, ["import", str(path)], env=env)
    assert result.exit_code == 1
    assert "row 2, column 'energy_tce'" in result.output and "0 of 1 row(s) loaded" in result.output
    missing = CliRunner().invoke(bureau, ["import", str(tmp_path / "absent.csv")], env=env)
    assert missing.exit_code == 1 and "no such file" in missing.output
    empty = CliRunner().invoke(bureau, ["publish", "--month", "2026-03"], env=env)
    assert empty.exit_code == 1 and "no reports" in empty.output
