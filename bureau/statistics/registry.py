"""The enterprise registry: one row per enterprise, attributes kept as validity intervals.

A change of attributes closes the open interval at the month it takes effect and opens a new one, so a
statistic for a past month uses the attributes that were valid then. The size class and the above-designated
flag are derived (``datafactory.codes.sizing``), never entered. Raises ``RegistryError`` for an invalid record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date

import psycopg

from datafactory.codes.credit_code import credit_code_problem
from datafactory.codes.gbt4754 import industry_code_problem, lookup
from datafactory.codes.sizing import above_designated, size_class
from datafactory.config.models import Ownership
from datafactory.errors import DataFactoryError

OWNERSHIPS = tuple(o.value for o in Ownership)
ATTRIBUTES = ("name", "industry_code", "town", "park", "ownership", "employees", "annual_revenue", "plant_id")


class RegistryError(DataFactoryError):
    """An enterprise record is invalid or conflicts with the registry's history."""


@dataclass(frozen=True)
class EnterpriseRecord:
    credit_code: str
    name: str
    industry_code: str  # bare class code, e.g. '3484'
    town: str
    park: str
    ownership: str
    employees: int
    annual_revenue: float  # 万元 per year
    plant_id: int | None = None
    key: str | None = None

    @property
    def size_class(self) -> str:
        return size_class(self.employees, self.annual_revenue)

    @property
    def above_designated(self) -> bool:
        return above_designated(self.annual_revenue)


def record_problems(values: dict[str, str]) -> list[tuple[str, str]]:
    """(column, message) for every problem of a registry row given as strings."""
    problems: list[tuple[str, str]] = []
    code = values.get("credit_code", "")
    if not code:
        problems.append(("credit_code", "required"))
    elif (p := credit_code_problem(code)) is not None:
        problems.append(("credit_code", p))
    if not values.get("name"):
        problems.append(("name", "required"))
    industry = values.get("industry_code", "")
    if not industry:
        problems.append(("industry_code", "required"))
    elif (p := industry_code_problem(industry)) is not None:
        problems.append(("industry_code", p))
    elif lookup(industry).level != "class":
        problems.append(("industry_code", f"{industry!r} is a {lookup(industry).level}; give a 4-digit class"))
    elif not lookup(industry).division or not 13 <= int(lookup(industry).division) <= 43:
        problems.append(("industry_code", f"{industry!r} is not manufacturing (divisions 13–43)"))
    if not values.get("town"):
        problems.append(("town", "required"))
    if values.get("ownership", "") not in OWNERSHIPS:
        problems.append(("ownership", f"{values.get('ownership', '')!r} is not one of {', '.join(OWNERSHIPS)}"))
    for column, kind in (("employees", int), ("annual_revenue", float)):
        try:
            if kind(values.get(column, "")) < 0:
                problems.append((column, "must not be negative"))
        except ValueError:
            problems.append((column, f"{values.get(column, '')!r} is not a number"))
    return problems


def record_from_values(values: dict[str, str], plant_id: int | None = None) -> EnterpriseRecord:
    problems = record_problems(values)
    if problems:
        raise RegistryError("; ".join(f"{c}: {m}" for c, m in problems))
    return EnterpriseRecord(
        credit_code=values["credit_code"],
        name=values["name"],
        industry_code=lookup(values["industry_code"]).code,
        town=values["town"],
        park=values.get("park", "") or values.get("industrial_park", ""),
        ownership=values["ownership"],
        employees=int(values["employees"]),
        annual_revenue=float(values["annual_revenue"]),
        plant_id=plant_id,
        key=values.get("key") or None,
    )


def _attrs(rec: EnterpriseRecord) -> tuple[object, ...]:
    d = asdict(rec)
    return tuple(d[a] for a in ATTRIBUTES)


def upsert(conn: psycopg.Connection, rec: EnterpriseRecord, valid_from: date) -> int:
    """Register ``rec`` with effect from ``valid_from`` (a month start). Returns the enterprise id.

    Unchanged attributes leave the history untouched; a change closes the open interval at ``valid_from``.
    """
    if valid_from.day != 1:
        raise RegistryError(f"valid_from {valid_from} must be the first day of a month")
    row = conn.execute(
        "INSERT INTO bureau_enterprises (credit_code, key) VALUES (%s, %s) ON CONFLICT (credit_code)"
        " DO UPDATE SET key = COALESCE(EXCLUDED.key, bureau_enterprises.key) RETURNING id",
        (rec.credit_code, rec.key),
    ).fetchone()
    assert row is not None
    eid: int = row[0]
    open_row = conn.execute(
        "SELECT valid_from, name, industry_code, town, park, ownership, employees, annual_revenue, plant_id"
        " FROM bureau_enterprise_versions WHERE enterprise_id = %s AND valid_to IS NULL",
        (eid,),
    ).fetchone()
    if open_row is not None:
        if tuple(open_row[1:]) == _attrs(rec):
            return eid
        if valid_from < open_row[0]:
            raise RegistryError(
                f"{rec.credit_code}: change from {valid_from} precedes the open interval from {open_row[0]}"
            )
        if valid_from == open_row[0]:
            conn.execute(
                "DELETE FROM bureau_enterprise_versions WHERE enterprise_id = %s AND valid_from = %s",
                (eid, valid_from),
            )
        else:
            conn.execute(
                "UPDATE bureau_enterprise_versions SET valid_to = %s WHERE enterprise_id = %s AND valid_to IS NULL",
                (valid_from, eid),
            )
    conn.execute(
        "INSERT INTO bureau_enterprise_versions (enterprise_id, valid_from, name, industry_code, division,"
        " industry_group, town, park, ownership, employees, annual_revenue, size_class, above_designated, plant_id)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            eid, valid_from, rec.name, rec.industry_code, rec.industry_code[:2], rec.industry_code[:3], rec.town,
            rec.park, rec.ownership, rec.employees, rec.annual_revenue, rec.size_class, rec.above_designated,
            rec.plant_id,
        ),
    )
    return eid


def deregister(conn: psycopg.Connection, credit_code: str, from_month: date) -> None:
    """The enterprise leaves the registry (closed, moved away) from ``from_month`` on."""
    conn.execute(
        "UPDATE bureau_enterprise_versions v SET valid_to = %s FROM bureau_enterprises e"
        " WHERE e.id = v.enterprise_id AND e.credit_code = %s AND v.valid_to IS NULL",
        (from_month, credit_code),
    )


def history(conn: psycopg.Connection, credit_code: str) -> list[dict[str, object]]:
    cur = conn.execute(
        "SELECT v.valid_from, v.valid_to, v.name, v.industry_code, v.town, v.park, v.ownership, v.employees,"
        " v.annual_revenue, v.size_class, v.above_designated, v.plant_id FROM bureau_enterprise_versions v"
        " JOIN bureau_enterprises e ON e.id = v.enterprise_id WHERE e.credit_code = %s ORDER BY v.valid_from",
        (credit_code,),
    )
    names = [d.name for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def plant_for_key(conn: psycopg.Connection, key: str) -> int | None:
    """The plant of the platform whose enterprise is ``key`` (lowest id if it has several sites)."""
    row = conn.execute("SELECT min(id) FROM plants WHERE enterprise = %s", (key,)).fetchone()
    return None if row is None else row[0]
