"""Import monthly enterprise reports (and registry files) from CSV or XLSX.

Every row is validated and every problem is reported with its spreadsheet row and column. A file with any
problem imports nothing, unless ``good_rows_only`` is set: then the valid rows are loaded and the report lists
the rejected ones. A report for an enterprise and month that already has figures is a revision: it replaces
them in ``bureau_reports`` and is kept, numbered, in ``bureau_report_revisions``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg

from bureau.statistics import registry
from bureau.statistics.tabular import EXTRA_KEY, Problem, read_table
from datafactory.codes.calendar import parse_month
from datafactory.codes.credit_code import credit_code_problem

REPORT_COLUMNS = (
    "credit_code", "month", "output_value", "sales_value", "revenue", "employment", "energy_tce", "electricity_kwh",
)
REGISTRY_COLUMNS = ("credit_code", "name", "industry_code", "town", "ownership", "employees", "annual_revenue")
REGISTRY_OPTIONAL = ("park", "industrial_park", "key", "valid_from")


@dataclass
class ImportReport:
    file: str
    rows_total: int = 0
    rows_loaded: int = 0
    revisions: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class ReportRow:
    enterprise_id: int
    month: date
    output_value: float
    sales_value: float
    revenue: float
    employment: int
    energy_tce: float
    electricity_kwh: float


def _number(text: str, *, integer: bool) -> tuple[float | None, str | None]:
    if text == "":
        return None, "required"
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        return None, f"{text!r} is not a number"
    if not math.isfinite(value):
        return None, f"{text!r} is not a finite number"
    if value < 0:
        return None, f"{text!r} is negative"
    if integer and not value.is_integer():
        return None, f"{text!r} is not a whole number"
    return value, None


def _header_problems(header: list[str], required: tuple[str, ...], optional: tuple[str, ...]) -> list[Problem]:
    problems = [Problem(1, c, "required column is missing") for c in required if c not in header]
    problems += [Problem(1, c, "unknown column") for c in header if c and c not in required + optional]
    return problems


def validate_reports(conn: psycopg.Connection, path: Path) -> tuple[list[tuple[int, ReportRow]], ImportReport]:
    table = read_table(path)
    report = ImportReport(str(path), rows_total=len(table.rows))
    report.problems += _header_problems(table.header, REPORT_COLUMNS, ())
    if report.problems:
        return [], report
    known: dict[str, int] = dict(conn.execute("SELECT credit_code, id FROM bureau_enterprises").fetchall())
    this_month = datetime.now(UTC).date().replace(day=1)
    seen: dict[tuple[str, date], int] = {}
    good: list[tuple[int, ReportRow]] = []
    for number, values in table.rows:
        row_problems: list[Problem] = []
        extra = values.get(EXTRA_KEY)
        if extra:
            row_problems.append(Problem(number, "", f"{extra} value(s) beyond the header's columns"))
        code = values["credit_code"]
        if not code:
            row_problems.append(Problem(number, "credit_code", "required"))
        elif (p := credit_code_problem(code)) is not None:
            row_problems.append(Problem(number, "credit_code", p))
        elif code not in known:
            row_problems.append(Problem(number, "credit_code", f"{code} is not in the enterprise registry"))
        month = parse_month(values["month"])
        if month is None:
            row_problems.append(Problem(number, "month", f"{values['month']!r} is not a month (YYYY-MM)"))
        elif month > this_month:
            row_problems.append(Problem(number, "month", f"{values['month']} is in the future"))
        numbers: dict[str, float] = {}
        for column in REPORT_COLUMNS[2:]:
            value, problem = _number(values[column], integer=column == "employment")
            if problem:
                row_problems.append(Problem(number, column, problem))
            elif value is not None:
                numbers[column] = value
        if month is not None and code:
            first = seen.setdefault((code, month), number)
            if first != number:
                row_problems.append(Problem(number, "month", f"duplicate of row {first} ({code}, {month:%Y-%m})"))
        if not row_problems and numbers["sales_value"] > numbers["output_value"] * 1.5 + 1:
            row_problems.append(
                Problem(number, "sales_value", "sales value exceeds 150 % of output value; check the units (万元)")
            )
        if row_problems:
            report.problems += row_problems
            continue
        assert month is not None
        good.append((number, ReportRow(
            known[code], month, numbers["output_value"], numbers["sales_value"], numbers["revenue"],
            int(numbers["employment"]), numbers["energy_tce"], numbers["electricity_kwh"],
        )))
    return good, report


def write_reports(conn: psycopg.Connection, rows: list[ReportRow], source: str) -> int:
    """Write reports as new revisions; returns how many replaced earlier figures."""
    if not rows:
        return 0
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS bureau_incoming (enterprise_id integer, month date, output_value float8,"
        " sales_value float8, revenue float8, employment integer, energy_tce float8, electricity_kwh float8)"
        " ON COMMIT DROP"
    )
    conn.execute("TRUNCATE bureau_incoming")
    with conn.cursor().copy("COPY bureau_incoming FROM STDIN") as copy:
        for r in rows:
            copy.write_row((r.enterprise_id, r.month, r.output_value, r.sales_value, r.revenue, r.employment,
                            r.energy_tce, r.electricity_kwh))
    row = conn.execute(
        "SELECT count(*) FROM bureau_incoming i JOIN bureau_reports r USING (enterprise_id, month)"
    ).fetchone()
    revised = int(row[0]) if row else 0
    conn.execute(
        """INSERT INTO bureau_report_revisions (enterprise_id, month, revision, output_value, sales_value, revenue,
               employment, energy_tce, electricity_kwh, source)
           SELECT i.enterprise_id, i.month, COALESCE(r.revision, 0) + 1, i.output_value, i.sales_value, i.revenue,
               i.employment, i.energy_tce, i.electricity_kwh, %s
           FROM bureau_incoming i LEFT JOIN bureau_reports r USING (enterprise_id, month)""",
        (source,),
    )
    conn.execute(
        """INSERT INTO bureau_reports (enterprise_id, month, revision, output_value, sales_value, revenue,
               employment, energy_tce, electricity_kwh, source)
           SELECT enterprise_id, month, 1, output_value, sales_value, revenue, employment, energy_tce,
               electricity_kwh, %s FROM bureau_incoming
           ON CONFLICT (enterprise_id, month) DO UPDATE SET revision = bureau_reports.revision + 1,
               output_value = EXCLUDED.output_value, sales_value = EXCLUDED.sales_value,
               revenue = EXCLUDED.revenue, employment = EXCLUDED.employment, energy_tce = EXCLUDED.energy_tce,
               electricity_kwh = EXCLUDED.electricity_kwh, source = EXCLUDED.source, recorded_at = now()""",
        (source,),
    )
    return revised


def import_reports(conn: psycopg.Connection, path: Path, *, good_rows_only: bool = False) -> ImportReport:
    """Validate and (if valid, or with ``good_rows_only``) load a reports file in one transaction."""
    good, report = validate_reports(conn, path)
    if report.problems and not good_rows_only:
        conn.rollback()
        return report
    with conn.transaction():
        report.revisions = write_reports(conn, [r for _, r in good], f"import:{path.name}")
        report.rows_loaded = len(good)
        conn.execute(
            "INSERT INTO bureau_imports (file, kind, rows_total, rows_loaded, errors) VALUES (%s, 'reports', %s, %s,"
            " %s::jsonb)",
            (str(path), report.rows_total, report.rows_loaded, _errors_json(report)),
        )
    conn.commit()  # the validation's reads opened the transaction the block above was a savepoint of
    return report


def _errors_json(report: ImportReport) -> str:
    import orjson

    return orjson.dumps([p.as_dict() for p in report.problems]).decode()


def import_registry(
    conn: psycopg.Connection, path: Path, *, valid_from: date, good_rows_only: bool = False
) -> ImportReport:
    """Register or update enterprises from a file; a ``valid_from`` column (YYYY-MM) overrides the default."""
    table = read_table(path)
    report = ImportReport(str(path), rows_total=len(table.rows))
    report.problems += _header_problems(table.header, REGISTRY_COLUMNS, REGISTRY_OPTIONAL)
    if report.problems:
        return report
    records: list[tuple[registry.EnterpriseRecord, date]] = []
    seen: dict[str, int] = {}
    for number, values in table.rows:
        problems = [Problem(number, c, m) for c, m in registry.record_problems(values)]
        start = valid_from
        if values.get("valid_from"):
            parsed = parse_month(values["valid_from"])
            if parsed is None:
                problems.append(Problem(number, "valid_from", f"{values['valid_from']!r} is not a month (YYYY-MM)"))
            else:
                start = parsed
        first = seen.setdefault(values.get("credit_code", ""), number)
        if first != number:
            problems.append(Problem(number, "credit_code", f"duplicate of row {first}"))
        if problems:
            report.problems += problems
            continue
        plant_id = registry.plant_for_key(conn, values["key"]) if values.get("key") else None
        records.append((registry.record_from_values(values, plant_id), start))
    if report.problems and not good_rows_only:
        conn.rollback()
        return report
    with conn.transaction():
        for rec, start in records:
            registry.upsert(conn, rec, start)
        report.rows_loaded = len(records)
        conn.execute(
            "INSERT INTO bureau_imports (file, kind, rows_total, rows_loaded, errors) VALUES (%s, 'registry', %s,"
            " %s, %s::jsonb)",
            (str(path), report.rows_total, report.rows_loaded, _errors_json(report)),
        )
    conn.commit()  # the validation's reads opened the transaction the block above was a savepoint of
    return report
