"""Attack tests on a realistic synthetic city: the `bureau` role sees only suppressed aggregates, and a linear
programming attack over every published cell, margin and hierarchy total cannot narrow any confidential cell
below its protection requirement. Also: the planted sector decline reaches the early-warning list."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import numpy as np
import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql
from scipy.optimize import linprog

from bureau.cli import bureau
from bureau.statistics.facts import enterprise_frame, monthly_series
from bureau.statistics.macro import early_warnings
from bureau.statistics.publish import PROTECTED
from datafactory.codes.calendar import add_months, month_range
from datafactory.db.connect import connect, with_database
from simulator.city_cli import city
from tests.conftest import PG_SERVER


def one(cur: psycopg.Cursor) -> tuple[Any, ...]:
    row = cur.fetchone()
    assert row is not None
    return row


# One worker builds the city once for every test of this module (CI runs with --dist loadgroup).
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.xdist_group("bureau_city")]

MONTH = date(2026, 10, 1)
P, K, MIN_N = 0.10, 0.85, 3
RAW = ["bureau_enterprises", "bureau_enterprise_versions", "bureau_reports", "bureau_report_revisions",
       "bureau_platform_energy", "bureau_published_cells", "bureau_sim_truth", "plants", "samples"]
VIEWS = {  # view → (dimension columns of the view, the canonical dimensions they fill)
    "bureau_v_industry": ("division", "industry_group"),
    "bureau_v_town": ("town",),
    "bureau_v_park": ("park",),
    "bureau_v_size": ("size_class",),
    "bureau_v_ownership": ("ownership",),
    "bureau_v_above_designated": ("above_designated",),
    "bureau_v_division_above": ("division", "above_designated"),
}
CROSS = {"bureau_v_division_above"}  # two-way tables: both margins add up
DIMS = ("division", "industry_group", "town", "park", "size_class", "ownership", "above_designated")


@pytest.fixture(scope="module")
def city_url(template_db: str) -> Iterator[str]:
    name = f"dft_city_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(with_database(PG_SERVER, "postgres"), autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template_db))
        )
    url = with_database(PG_SERVER, name)
    runner = CliRunner()
    env = {"DATAFACTORY_DATABASE_URL": url}
    result = runner.invoke(city, ["simulate", "--enterprises", "2000", "--towns", "30", "--months", "36"], env=env)
    assert result.exit_code == 0, result.output
    # A year earlier first: growth rates are published only where both months' inputs are published.
    for month in (add_months(MONTH, -12), MONTH):
        result = runner.invoke(bureau, ["publish", "--month", f"{month:%Y-%m}"], env=env)
        assert result.exit_code == 0, result.output
    yield url
    with psycopg.connect(with_database(PG_SERVER, "postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_city_is_realistic_and_deterministic(city_url: str) -> None:
    with connect(city_url) as conn:
        n, towns, divisions = one(conn.execute(
            "SELECT count(DISTINCT enterprise_id), count(DISTINCT town), count(DISTINCT division)"
            " FROM bureau_enterprise_versions"))
        months = one(conn.execute("SELECT count(DISTINCT month) FROM bureau_reports"))[0]
        shares = [r[0] for r in conn.execute(
            "SELECT output_value / sum(output_value) OVER () FROM bureau_reports WHERE month = %s"
            " ORDER BY output_value DESC LIMIT 10", (MONTH,))]
        truth: dict[str, date] = dict(conn.execute("SELECT kind, month FROM bureau_sim_truth").fetchall())
    assert n == 2000 and towns >= 30 and divisions == 31 and months == 36
    assert shares[0] > 0.02 and sum(shares) > 0.15  # a few dominant firms
    assert truth["division_decline"] == date(2026, 3, 1) and "park_growth" in truth
    with _as_bureau(city_url) as conn:
        growth: dict[str, float | None] = dict(conn.execute(
            "SELECT park, yoy_growth FROM bureau_v_park WHERE month = %s AND park <> '*'", (MONTH,)).fetchall())
    # The planted park grows 1.5 % a month on top of the trend; the others do not.
    grower = max((p for p in growth if growth[p] is not None), key=lambda p: growth[p] or 0.0)
    assert grower == "松山湖园区" and (growth[grower] or 0.0) > 0.15


def _as_bureau(url: str) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("SET ROLE bureau")
    return conn


def test_bureau_role_cannot_read_raw_tables(city_url: str) -> None:
    with _as_bureau(city_url) as conn:
        for table in RAW:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT * FROM {table} LIMIT 1")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO bureau_published_cells (month, table_name, enterprises) VALUES (now(), 'x', 1)")
        rows = conn.execute("SELECT suppressed, output_value FROM bureau_v_industry WHERE month = %s",
                            (MONTH,)).fetchall()
    assert rows and any(s for s, _ in rows) and any(not s for s, _ in rows)
    # A suppressed cell carries a flag and no value — never a zero.
    assert all(v is None for s, v in rows if s) and all(v is not None for s, v in rows if not s)
    with _as_bureau(city_url) as conn:
        rates = conn.execute("SELECT suppressed, connected, operating_rate FROM bureau_v_town WHERE month = %s",
                             (MONTH,)).fetchall()
    assert any(r is not None for _, _, r in rates)
    assert all(not s and c >= MIN_N for s, c, r in rates if r is not None)


def _published(url: str, measure: str) -> tuple[dict[tuple[str, ...], float | None], dict[tuple[str, ...], str],
                                                  list[tuple[tuple[str, ...], list[tuple[str, ...]]]]]:
    """Cells as the bureau role sees them, and the additivity it can infer from the table structure."""
    values: dict[tuple[str, ...], float | None] = {}
    flags: dict[tuple[str, ...], str] = {}
    relations: list[tuple[tuple[str, ...], list[tuple[str, ...]]]] = []
    city_key = tuple("*" for _ in DIMS)
    with _as_bureau(url) as conn:
        for view, dims in VIEWS.items():
            rows = conn.execute(f"SELECT {', '.join(dims)}, {measure}, suppression FROM {view} WHERE month = %s",
                                (MONTH,)).fetchall()
            keys = []
            for row in rows:
                key = tuple(row[dims.index(d)] if d in dims else "*" for d in DIMS)
                values[key], flags[key] = row[len(dims)], row[len(dims) + 1]
                keys.append(key)
            first = DIMS.index(dims[0])
            top = [k for k in keys if k[first] != "*" and all(k[DIMS.index(d)] == "*" for d in dims[1:])]
            relations.append((city_key, top))
            if len(dims) == 2:  # division → groups, or division × above designated
                second = DIMS.index(dims[1])
                for parent in top:
                    kids = [k for k in keys if k[first] == parent[first] and k[second] != "*"]
                    if kids:
                        relations.append((parent, kids))
            if view in CROSS:
                column_totals = [k for k in keys if k[first] == "*" and k[second] != "*"]
                relations.append((city_key, column_totals))
                for total in column_totals:
                    kids = [k for k in keys if k[second] == total[second] and k[first] != "*"]
                    relations.append((total, kids))
    return values, flags, relations


def _requirements(url: str, measure: str) -> dict[tuple[str, ...], tuple[float, float]]:
    """(true value, protection requirement) per cell, from the raw data, by the p % / dominance / n rules."""
    with connect(url) as conn:
        facts = enterprise_frame(conn, MONTH)
    facts["park"] = facts["park"].replace("", "none")
    out: dict[tuple[str, ...], tuple[float, float]] = {}
    for dims in [(), ("division",), ("division", "industry_group"), ("town",), ("park",), ("size_class",),
                 ("ownership",), ("above_designated",), ("division", "above_designated")]:
        groups = facts.groupby(list(dims)) if dims else [((), facts)]
        for raw_key, group in groups:
            key = raw_key if isinstance(raw_key, tuple) else (raw_key,)
            cell = tuple(str(key[dims.index(d)]) if d in dims else "*" for d in DIMS)
            x = np.sort(group[measure].to_numpy(float))[::-1]
            total, x1, x2 = x.sum(), x[0], (x[1] if len(x) > 1 else 0.0)
            need = max(P * x1 - (total - x1 - x2), (x1 + x2) / K - total if x1 + x2 > K * total else 0.0,
                       P * x1 if len(x) < MIN_N else 0.0, 0.0)
            out[cell] = (total, need)
    return out


@pytest.mark.parametrize("measure", PROTECTED)
def test_lp_attack_cannot_narrow_any_confidential_cell(city_url: str, measure: str) -> None:
    values, flags, relations = _published(city_url, measure)
    truth = _requirements(city_url, measure)
    hidden = sorted(k for k, v in values.items() if v is None)
    primary = [k for k in hidden if flags[k] == "primary"]
    assert len(primary) >= 10 and len(hidden) > len(primary), "the month should need both kinds of suppression"
    index = {k: i for i, k in enumerate(hidden)}
    a_eq, b_eq = [], []
    for total, parts in relations:
        row = np.zeros(len(hidden))
        rhs = 0.0
        for key, sign in ((total, 1.0), *((p, -1.0) for p in parts)):
            if key in index:
                row[index[key]] += sign
            else:
                rhs -= sign * float(values[key])  # type: ignore[arg-type]
        if row.any():
            a_eq.append(row)
            b_eq.append(rhs)
    assert a_eq, "suppressed cells must appear in published relations"
    weak = []
    # Work in units of the largest published value: kWh totals near 1e10 would defeat the solver's tolerances.
    scale = max(abs(v) for v in values.values() if v is not None)
    a_matrix, b_vector = np.array(a_eq), np.array(b_eq) / scale
    for key in primary:
        value, need = truth[key]
        bounds = []
        for sense in (1.0, -1.0):
            cost = np.zeros(len(hidden))
            cost[index[key]] = sense
            res = linprog(cost, A_eq=a_matrix, b_eq=b_vector, bounds=(0, None), method="highs")
            assert res.status in (0, 3), res.message
            bounds.append(np.inf if res.status == 3 else sense * res.fun * scale)
        low, high = bounds
        assert low <= value + 1e-6 * max(1, value) and high >= value - 1e-6 * max(1, value)
        slack = 1e-6 * max(1.0, value)
        if high - value < need - slack or value - low < need - slack:
            weak.append((key, value, need, low, high))
    assert not weak, f"{len(weak)} cell(s) recoverable within their protection: {weak[:3]}"


def test_planted_decline_reaches_early_warning_and_quiet_months_stay_short(city_url: str) -> None:
    with connect(city_url) as conn:
        onset = one(conn.execute("SELECT month FROM bureau_sim_truth WHERE kind = 'division_decline'"))[0]
        division = one(conn.execute("SELECT scope FROM bureau_sim_truth WHERE kind = 'division_decline'"))[0]
        first = one(conn.execute("SELECT min(month) FROM bureau_reports"))[0]
        by_div = monthly_series(conn, "division", first, MONTH)
        by_town = monthly_series(conn, "town", first, MONTH)
    flagged = {m: {w.scope for w in early_warnings(by_div, m)} for m in (onset, add_months(onset, 1))}
    assert division in flagged[onset] | flagged[add_months(onset, 1)]
    quiet = [m for m in month_range(add_months(first, 18), 36) if m < onset]
    counts = [len(early_warnings(by_div, m)) + len(early_warnings(by_town, m)) for m in quiet]
    print(f"early-warning entries on {len(quiet)} months with nothing planted: {counts}")
    assert max(counts) <= 8 and sum(counts) / len(counts) <= 3


def test_macro_results_need_a_published_history(city_url: str) -> None:
    """Only two months are published: no scope has the 24 published months a model is fitted on, so nothing is
    stored (tests/test_bureau_derived.py has the positive case and the inversion attack)."""
    runner = CliRunner()
    env = {"DATAFACTORY_DATABASE_URL": city_url}
    result = runner.invoke(bureau, ["analyse", "--month", f"{MONTH:%Y-%m}"], env=env)
    assert result.exit_code == 0, result.output
    with _as_bureau(city_url) as conn:
        forecasts = conn.execute(
            "SELECT count(DISTINCT scope), bool_and(lower_95 <= forecast AND forecast <= upper_95)"
            " FROM bureau_v_forecasts WHERE made_for = %s", (MONTH,)).fetchone()
        nowcasts = conn.execute("SELECT count(*) FROM bureau_v_nowcasts WHERE month = %s", (MONTH,)).fetchone()
        suppressed = {r[0] for r in conn.execute(
            "SELECT division FROM bureau_v_industry WHERE month = %s AND level = 'division' AND suppressed", (MONTH,))}
        scopes = {r[0] for r in conn.execute(
            "SELECT scope FROM bureau_v_forecasts WHERE made_for = %s AND scope_kind = 'division'", (MONTH,))}
    assert forecasts is not None and nowcasts is not None
    assert forecasts[0] == 0 and nowcasts[0] == 0
    assert not scopes & suppressed


def test_cells_hidden_earlier_in_the_year_stay_hidden(city_url: str) -> None:
    """Otherwise year-to-date minus this month would reveal last month's hidden year-to-date (runs last)."""
    runner = CliRunner()
    env = {"DATAFACTORY_DATABASE_URL": city_url}
    previous = add_months(MONTH, -1)
    for month in (previous, MONTH):
        result = runner.invoke(bureau, ["publish", "--month", f"{month:%Y-%m}"], env=env)
        assert result.exit_code == 0, result.output
    with _as_bureau(city_url) as conn:
        def hidden(month: date) -> set[tuple[str, str]]:
            return {(r[0], r[1]) for r in conn.execute(
                "SELECT division, industry_group FROM bureau_v_industry WHERE month = %s AND suppressed", (month,))}
        before, now = hidden(previous), hidden(MONTH)
    assert before and before <= now
