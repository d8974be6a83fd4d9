"""Every number the bulletin prints, read as the ``bureau`` role from the disclosure-controlled views only.

The connection switches to the role for the reads (``SET ROLE bureau``), so a bulletin can never show more than
the published cells: a suppressed cell arrives with NULL magnitudes and ``suppressed = true`` and is carried as
``Cell.suppressed``; the renderers print it as "—" with a note, never a number.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date

import psycopg

from bureau.bulletin.period import Period
from datafactory.codes.calendar import add_months
from datafactory.errors import DataFactoryError

_MEASURES = ("enterprises", "output_value", "output_ytd", "energy_tce", "electricity_kwh", "yoy_growth",
             "ytd_growth", "electricity_index", "energy_intensity", "connected", "operating_rate", "suppressed")


class BulletinError(DataFactoryError):
    """The period has nothing published to report on."""


@dataclass(frozen=True)
class Cell:
    """One published cell: ``key`` names the scope (division code, town, park…)."""

    month: date
    key: str
    label: str
    enterprises: int
    output_value: float | None
    output_ytd: float | None
    energy_tce: float | None
    electricity_kwh: float | None
    yoy_growth: float | None
    ytd_growth: float | None
    electricity_index: float | None
    energy_intensity: float | None
    connected: int
    operating_rate: float | None
    suppressed: bool


@dataclass(frozen=True)
class Warning_:
    month: date
    scope_kind: str
    scope: str
    measure: str
    actual: float
    expected: float
    shortfall: float


@dataclass
class BulletinData:
    period: Period
    city: list[Cell]                                  # one per month of the period
    divisions: list[Cell]                             # summed over the period's published months
    towns: list[Cell]
    parks: list[Cell]
    trend: list[Cell]                                 # city, the 12 months up to the period's end, published ones
    warnings: list[Warning_] = field(default_factory=list)
    division_names: dict[str, str] = field(default_factory=dict)

    @property
    def last_city(self) -> Cell:
        return self.city[-1]

    @property
    def detail_month(self) -> date:
        """The period's last published month (enterprises, year-to-date and operating rate are its figures)."""
        return self.city[-1].month

    @property
    def detail_months(self) -> list[date]:
        """The months the detail tables (divisions, towns, parks) add up: the period's published months."""
        return [c.month for c in self.city]

    @property
    def missing(self) -> list[date]:
        """Months of the period with nothing published (a quarter in progress, or a month withheld)."""
        published = {c.month for c in self.city}
        return [m for m in self.period.months if m not in published]

    def period_sum(self, measure: str) -> float | None:
        """An additive measure summed over every month of the period; None when any month is unpublished or
        suppressed (a partial sum would pass for the period's figure)."""
        values = [getattr(c, measure) for c in self.city]
        if self.missing or any(v is None for v in values):
            return None
        return float(sum(values))

    @property
    def period_output(self) -> float | None:
        return self.period_sum("output_value")

    @property
    def period_energy(self) -> float | None:
        return self.period_sum("energy_tce")

    @property
    def period_electricity(self) -> float | None:
        return self.period_sum("electricity_kwh")

    @property
    def period_intensity(self) -> float | None:
        """Energy per output over the period, from the sums (never an average of monthly ratios)."""
        energy, output = self.period_energy, self.period_output
        return None if energy is None or not output else energy / output

    def trend_series(self) -> tuple[list[date], list[float | None]]:
        """Every month of the twelve up to the latest, None where unpublished or suppressed (a gap)."""
        latest = self.detail_month
        months = [add_months(latest, i - 11) for i in range(12)]
        by_month = {c.month: c.output_value for c in self.trend}
        return months, [by_month.get(m) for m in months]

    def movers(self, n: int = 3) -> tuple[list[Cell], list[Cell]]:
        """The divisions with the highest and the lowest same-scope growth (published growth only)."""
        ranked = sorted((c for c in self.divisions if c.yoy_growth is not None), key=lambda c: c.yoy_growth or 0.0)
        return list(reversed(ranked[-n:])), [c for c in ranked[:n] if c not in ranked[-n:]]


@contextmanager
def as_bureau_role(conn: psycopg.Connection) -> Iterator[None]:
    """Run the enclosed reads as the ``bureau`` role, so they can see the disclosure-controlled views only."""
    try:
        conn.execute("SET ROLE bureau")
    except psycopg.errors.InsufficientPrivilege as err:
        raise BulletinError("the database login must be a member of the `bureau` role (GRANT bureau TO <login>)"
                            ) from err
    try:
        yield
    finally:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:
            conn.execute("RESET ROLE")


_ADDITIVE = ("output_value", "energy_tce", "electricity_kwh")


def _sum(cells: Sequence[Cell | None], measure: str) -> float | None:
    values: list[float | None] = [None if c is None or c.suppressed else getattr(c, measure) for c in cells]
    if not values or any(v is None for v in values):
        return None
    return float(sum(v for v in values if v is not None))


def period_cells(cells: Sequence[Cell], months: Sequence[date]) -> list[Cell]:
    """One cell per key of the last month with output, energy and electricity summed over ``months``.

    A sum with any month suppressed (or the cell absent that month) is withheld as a whole: a partial sum would
    pass for the period's figure. Energy intensity comes from the sums. Same-scope growth is not additive and
    no period base is published, so it is not shown; enterprises and year-to-date are the last month's.
    """
    by_key: dict[tuple[date, str], Cell] = {(c.month, c.key): c for c in cells}
    out: list[Cell] = []
    for c in (c for c in cells if c.month == months[-1]):
        parts = [by_key.get((m, c.key)) for m in months]
        output, energy, electricity = (_sum(parts, m) for m in _ADDITIVE)
        out.append(replace(
            c, output_value=output, energy_tce=energy, electricity_kwh=electricity, yoy_growth=None,
            ytd_growth=None, electricity_index=None, operating_rate=None,
            energy_intensity=None if energy is None or not output else energy / output,
            suppressed=any(p is None or p.suppressed for p in parts)))
    return out


def _cells(conn: psycopg.Connection, query: str, params: tuple[object, ...]) -> list[Cell]:
    rows = conn.execute(query, params).fetchall()
    return [Cell(r[0], str(r[1]), str(r[2] or r[1]), *r[3:]) for r in rows]


def load(conn: psycopg.Connection, period: Period) -> BulletinData:
    """Read the period's cells as the bureau role (the role is reset afterwards)."""
    measures = ", ".join(_MEASURES)
    months = list(period.months)
    with as_bureau_role(conn):
        city = _cells(conn, f"SELECT month, '*', '*', {measures} FROM bureau_v_city WHERE month = ANY(%s)"
                            " ORDER BY month", (months,))
        if not city:
            raise BulletinError(f"nothing is published for {period.label}: run `datafactory bureau publish` first")
        # Detail tables add up the period's published months (a quarter in progress has fewer, and says so).
        latest = city[-1].month
        shown = [c.month for c in city]
        detail = (shown,)
        divisions = _cells(conn, f"SELECT month, division, division_name, {measures} FROM bureau_v_industry"
                                 " WHERE level = 'division' AND month = ANY(%s) ORDER BY division, month", detail)
        towns = _cells(conn, f"SELECT month, town, town, {measures} FROM bureau_v_town WHERE town <> '*'"
                             " AND month = ANY(%s) ORDER BY town, month", detail)
        parks = _cells(conn, f"SELECT month, park, park, {measures} FROM bureau_v_park"
                             " WHERE park NOT IN ('*', 'none') AND month = ANY(%s) ORDER BY park, month", detail)
        if period.is_multi_month:
            divisions, towns, parks = (period_cells(t, shown) for t in (divisions, towns, parks))
        trend = _cells(conn, f"SELECT month, '*', '*', {measures} FROM bureau_v_city WHERE month > %s"
                             " AND month <= %s ORDER BY month", (add_months(latest, -12), latest))
        warnings = [Warning_(*r) for r in conn.execute(
            "SELECT month, scope_kind, scope, measure, actual, expected, shortfall FROM bureau_v_early_warnings"
            " WHERE month = ANY(%s) ORDER BY shortfall", (months,)).fetchall()]
        names: dict[str, str] = dict(conn.execute(
            "SELECT code, name FROM bureau_v_industry_codes WHERE level = 'division'").fetchall())
    return BulletinData(period, city, divisions, towns, parks, trend, warnings, names)
