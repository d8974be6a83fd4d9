"""The bureau dashboard's queries run AS THE ``bureau`` ROLE (so they can only touch the disclosure-controlled
views) and return rows of the right shape.

The published cells are written here directly, in the shape ``bureau publish`` writes them (one row per month and
table cell, NULL measures and a suppression mark where disclosure control suppressed a cell): publishing a real
synthetic city takes ~20 s per month on this machine, too slow for a dashboard test. The bureau's own tests cover
publishing; this one covers the dashboard's SQL, variables and the role boundary.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import psycopg
import pytest

from grafana.dashboards import BUREAU
from grafana.expand import leftover
from grafana.panel_queries import expanded_sql, panel_queries, resolve_variables
from tests.test_grafana_queries import scratch_database

pytestmark = pytest.mark.integration

MONTHS = [date(2025 + (8 + i) // 12, (8 + i) % 12 + 1, 1) for i in range(14)]  # 2025-09 … 2026-10
START = datetime(2024, 11, 1, tzinfo=UTC)
END = datetime(2026, 11, 15, tzinfo=UTC)


def _seed(conn: psycopg.Connection) -> None:
    """14 months of published cells: city, three divisions (one suppressed), two towns, two parks (one
    suppressed); one early warning; a forecast."""
    cells = [("industry", "*", "*", "*", 40, 10_000.0), ("industry", "34", "*", "*", 12, 3_000.0),
             ("industry", "38", "*", "*", 15, 4_000.0), ("industry", "39", "*", "*", 2, None),
             ("town", "*", "A town", "*", 20, 5_000.0), ("town", "*", "B town", "*", 20, 5_000.0),
             ("park", "*", "*", "North park", 9, 2_500.0), ("park", "*", "*", "South park", 1, None)]
    rows = []
    for i, month in enumerate(MONTHS):
        for table, division, town, park, n, base in cells:
            output = None if base is None else base * (1 + 0.01 * i)
            rows.append((month, table, division, town, park, n, output,
                         None if output is None else 0.05 - 0.08 * (division == "38"),
                         None if output is None else output * 0.0001,
                         None if output is None else 0.92,
                         "primary" if output is None else None))
    with conn.cursor() as cur:
        cur.executemany("""
            INSERT INTO bureau_published_cells (month, table_name, division, town, park, enterprises, output_value,
                yoy_growth, energy_tce, operating_rate, suppression)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        """, rows)
    conn.execute("UPDATE bureau_published_cells SET energy_intensity = energy_tce / output_value, connected = 5")
    conn.execute("""INSERT INTO bureau_early_warnings VALUES ('2026-03-01', 'division', '38', 'output_value',
                    3400, 4000, 3700, -0.15, -0.12)""")
    conn.execute("""INSERT INTO bureau_forecasts
                    SELECT '2026-10-01', 'division', d, m::date, 4000, 3600, 4400
                    FROM unnest(ARRAY['34', '38']) d,
                         generate_series('2026-11-01'::date, '2027-01-01'::date, interval '1 month') m""")


@pytest.fixture(scope="module")
def bureau_url(template_db: str) -> Iterator[str]:
    with scratch_database(template_db) as url:
        yield url


def test_bureau_panels_as_bureau_role(bureau_url: str) -> None:
    with psycopg.connect(bureau_url, autocommit=True) as conn:
        _seed(conn)
        conn.execute("SET ROLE bureau")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM bureau_published_cells")  # the raw table stays closed
        for dash in BUREAU:
            variables = resolve_variables(conn, dash, START, END)
            assert variables["month"].values[0] == "2026-10-01"  # newest month first
            assert set(variables["division"].values) >= {"34", "38", "39"}
            for pq in panel_queries((dash,)):
                text = expanded_sql(pq, variables, START, END)
                assert not leftover(text), pq.name
                cur = conn.execute(text)
                rows = cur.fetchall()
                assert rows, f"{pq.name}: no rows"
                columns = [c.name for c in cur.description or []]
                if pq.query.format == "time_series":
                    assert columns[0] == "time" and all(r[0].tzinfo is not None for r in rows)
        sectors = next(pq for pq in panel_queries(BUREAU) if pq.panel.title.startswith("Sectors"))
        cur = conn.execute(expanded_sql(sectors, resolve_variables(conn, BUREAU[0], START, END), START, END))
        by_division = {r[0]: r for r in cur.fetchall()}
    suppressed = by_division["39"]
    assert suppressed[-1] is True and suppressed[3] is None  # shown as suppressed, never as a number
