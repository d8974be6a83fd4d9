"""Must-show 2: derived figures (forecasts, growth rates) cannot be inverted into a suppressed value.

Each attack is shown succeeding on the old path and failing on the new one, against a real database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date

import numpy as np
import pandas as pd
import psycopg
import pytest
from psycopg import sql

from bureau.statistics.facts import DIMENSIONS, enterprise_frame, monthly_series
from bureau.statistics.macro import forecast
from bureau.statistics.macro_run import run_macro
from bureau.statistics.publish import build, publish_month
from bureau.statistics.releases import keys_of, ratio_exposures
from datafactory.codes.calendar import add_months
from datafactory.db.connect import with_database
from simulator.city import simulate
from tests.conftest import PG_SERVER, _admin

pytestmark = pytest.mark.integration


@pytest.fixture
def city_db(template_db: str) -> Iterator[str]:
    name = f"dft_derived_{uuid.uuid4().hex[:8]}"
    with _admin() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name),
                                                                         sql.Identifier(template_db)))
    try:
        yield with_database(PG_SERVER, name)
    finally:
        with _admin() as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _invert_forecast(series: pd.Series, hidden_at: pd.Timestamp, published_forecast: float) -> float:
    """The intruder's inversion: log forecast is affine in the hidden month's log value (OLS), so two trial values
    give the line and the published forecast its solution."""
    def f(v: float) -> float:
        trial = series.where(series.index != hidden_at, v)
        return float(np.log(forecast(trial, 1)["forecast"].iloc[0]))

    v1, v2 = 1.0e3, 5.0e3
    slope = (f(v2) - f(v1)) / (np.log(v2) - np.log(v1))
    if abs(slope) < 1e-12:
        return float("nan")  # the forecast does not depend on the hidden value: nothing to invert
    return float(np.exp(np.log(v1) + (np.log(published_forecast) - f(v1)) / slope))


def test_forecast_fitted_on_a_hidden_month_inverts_and_the_published_one_does_not(city_db: str) -> None:
    last = date(2026, 6, 1)
    with psycopg.connect(city_db) as conn:
        simulate(conn, enterprises=250, towns=8, months=36, seed=3, end=last)
        series = monthly_series(conn, "division", add_months(last, -35), last)
        biggest = str(series.groupby("scope")["enterprises"].min().idxmax())
        hidden = add_months(last, -30)
        # The publication: every division published every month, except the biggest one in ``hidden``.
        months = sorted({pd.Timestamp(m).date() for m in series["month"]})
        with conn.cursor().copy("COPY bureau_published_cells (month, table_name, division, enterprises,"
                                " output_value, suppression) FROM STDIN") as copy:
            for m in months:
                for scope in sorted(set(series["scope"])):
                    hide = scope == biggest and m == hidden
                    copy.write_row((m, "industry", scope, 10, None if hide else 1.0, "primary" if hide else None))
        conn.commit()
        run_macro(conn, last)
        conn.commit()
        published = conn.execute("SELECT forecast FROM bureau_forecasts WHERE made_for = %s AND scope_kind ="
                                 " 'division' AND scope = %s ORDER BY month LIMIT 1", (last, biggest)).fetchone()
        assert published is not None, "30 published months after the hidden one: the scope gets forecasts"
        adjusted = conn.execute("SELECT seasonally_adjusted FROM bureau_seasonal WHERE month = %s AND scope_kind ="
                                " 'division' AND scope = %s", (last, biggest)).fetchone()
        assert adjusted is not None

        own = series[series["scope"] == biggest].set_index("month")["output_value"].astype(float)
        at = pd.Timestamp(hidden)
        truth = float(own[at])
        # Old path: the model fitted on the whole history, hidden month included, inverts exactly.
        old = float(forecast(own, 1)["forecast"].iloc[0])
        assert _invert_forecast(own, at, old) == pytest.approx(truth, rel=1e-6)
        # New path: the published forecast does not move when the hidden month's raw value does.
        conn.execute("UPDATE bureau_reports r SET output_value = output_value * 3 FROM bureau_enterprise_versions v"
                     " WHERE v.enterprise_id = r.enterprise_id AND r.month = %s AND v.division = %s"
                     " AND r.month >= v.valid_from AND (v.valid_to IS NULL OR r.month < v.valid_to)",
                     (hidden, biggest))
        conn.commit()
        run_macro(conn, last)
        conn.commit()
        again = conn.execute("SELECT forecast FROM bureau_forecasts WHERE made_for = %s AND scope_kind ="
                             " 'division' AND scope = %s ORDER BY month LIMIT 1", (last, biggest)).fetchone()
        assert again is not None and again[0] == pytest.approx(published[0], rel=1e-12)
        adjusted_again = conn.execute("SELECT seasonally_adjusted FROM bureau_seasonal WHERE month = %s AND"
                                      " scope_kind = 'division' AND scope = %s", (last, biggest)).fetchone()
        assert adjusted_again is not None and adjusted_again[0] == pytest.approx(adjusted[0], rel=1e-12)
        changed = monthly_series(conn, "division", add_months(last, -35), last)
        own2 = changed[changed["scope"] == biggest].set_index("month")["output_value"].astype(float)
        assert float(own2[at]) == pytest.approx(3 * truth)
        assert float(forecast(own2, 1)["forecast"].iloc[0]) != pytest.approx(old, rel=1e-6)  # the old path leaks


def test_growth_rate_of_a_cell_hidden_a_year_ago_is_not_published(city_db: str) -> None:
    now, ago = date(2026, 1, 1), date(2025, 1, 1)
    with psycopg.connect(city_db) as conn:
        simulate(conn, enterprises=400, towns=8, months=24, seed=11, end=now)
        publish_month(conn, ago)
        publish_month(conn, now)
        assert ratio_exposures(conn, now) == []  # new path: no growth rate inverts
        dims = ", ".join(DIMENSIONS)
        same_cell = f"({', '.join('o.' + d for d in DIMENSIONS)}) = ({', '.join('c.' + d for d in DIMENSIONS)})"
        hidden_ago = conn.execute(
            f"SELECT count(*) FROM bureau_published_cells c WHERE month = %s AND yoy_growth IS NOT NULL AND EXISTS"
            f" (SELECT 1 FROM bureau_published_cells o WHERE o.month = %s AND o.output_value IS NULL AND"
            f" {same_cell})", (now, ago)).fetchone()
        assert hidden_ago == (0,)
        # Old path: the single-month publication gave every published cell its same-scope growth rate.
        old = build(enterprise_frame(conn, now), now).cells
        old_growth = dict(zip(keys_of(old), old["yoy_growth"].tolist(), strict=True))
        same = dict(zip(keys_of(old), old["_same"].tolist(), strict=True))
        rows = conn.execute(f"SELECT {dims} FROM bureau_published_cells WHERE month = %s AND output_value IS NOT"
                            f" NULL", (now,)).fetchall()
        with conn.transaction():
            for r in rows:
                key = tuple(r)
                g = old_growth.get(key)
                if g is not None and np.isfinite(g) and same[key] >= 3:
                    conn.execute(f"UPDATE bureau_published_cells SET yoy_growth = %s WHERE month = %s AND"
                                 f" ({dims}) = ({', '.join(['%s'] * 7)})", (g, now, *key))
            leaks = ratio_exposures(conn, now)
            print("\n".join(x.describe() for x in leaks[:5]))
            assert leaks, "the old publication's growth rates give hidden year-ago values back"
