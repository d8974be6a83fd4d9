"""Every generated dashboard's SQL runs against a database filled by the simulator and analytics, and returns rows
of the shape its panel needs — no empty panel for the demo plant.

How the SQL is expanded (the rules live in ``grafana/expand.py``, mirroring Grafana's PostgreSQL data source):
- template variables first, as Grafana's frontend does: ``${v:csv}`` joins values unquoted, ``${v:sqlstring}``
  quotes each one, a bare ``${v}``/``$v`` is quoted and comma-joined for multi-value/All variables and the raw
  value otherwise; All (no custom all-value) means every option of the variable;
- then the backend macros: ``$__timeFilter(c)`` → ``c BETWEEN '<from>' AND '<to>'`` (RFC 3339 UTC),
  ``$__timeFrom()``/``$__timeTo()``, ``$__interval_ms`` (range ÷ 1000 points, rounded to a nice step, never below
  the panel's minimum interval), ``$__unixEpochFilter``, ``$__timeGroup[Alias]``;
- variable queries are expanded the same way and executed in dashboard order (line depends on plant, machine on
  line), with All selected; a second pass picks a single value of every variable.

Shape per panel kind: timeseries/state-timeline (format time_series) need a timestamptz ``time`` column and a value
column; stat/gauge/bargauge/piechart need at least one numeric column with a value; tables and bar charts need
rows (bar charts a text column and a numeric one).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from benchmarks.dashboards import FilledPlant, fill_database
from datafactory.db.connect import with_database
from grafana.dashboards import PLANT_AND_PLATFORM
from grafana.expand import VariableValue, leftover
from grafana.panel_queries import PanelQuery, expanded_sql, panel_queries, resolve_variables
from tests.conftest import PG_SERVER

pytestmark = pytest.mark.integration

DAYS = 6.0
NUMERIC = (int, float)
PANEL_QUERIES = list(panel_queries(PLANT_AND_PLATFORM))


@contextmanager
def scratch_database(template_db: str) -> Iterator[str]:
    """A database of its own (cloned from the migrated template) for a whole test module; dropped afterwards."""
    name = f"dft_grafana_{uuid.uuid4().hex[:8]}"
    admin = with_database(PG_SERVER, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name),
                                                                       sql.Identifier(template_db)))
    try:
        yield with_database(PG_SERVER, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def demo(template_db: str) -> Iterator[FilledPlant]:
    """One database for the whole module: 6 days of the demo plant with a degrading bearing, analytics run,
    and the config/status/health/dead-letter rows ingest writes."""
    with scratch_database(template_db) as url:
        yield fill_database(url, days=DAYS)


@pytest.fixture(scope="module")
def all_selected(demo: FilledPlant) -> dict[str, dict[str, VariableValue]]:
    with psycopg.connect(demo.url) as conn:
        return {d.uid: resolve_variables(conn, d, demo.start, demo.end) for d in PLANT_AND_PLATFORM}


def _run(url: str, text: str) -> tuple[list[str], list[tuple[object, ...]]]:
    with psycopg.connect(url) as conn:
        cur = conn.execute(text)
        return [c.name for c in cur.description or []], cur.fetchall()


def _assert_shape(pq: PanelQuery, columns: list[str], rows: list[tuple[object, ...]]) -> None:
    kind, where = pq.panel.kind, pq.name
    assert rows, f"{where}: no rows — the panel would be empty for the demo plant"
    if pq.query.format == "time_series":
        assert "time" in columns, f"{where}: time series without a time column: {columns}"
        t = columns.index("time")
        times = [r[t] for r in rows]
        assert all(isinstance(v, datetime) and v.tzinfo is not None for v in times), f"{where}: time not tz"
        values = [i for i, c in enumerate(columns) if c not in ("time", "metric")]
        assert values, f"{where}: no value column"
        if kind == "state-timeline":
            assert any(r[i] is not None for r in rows for i in values), f"{where}: only nulls"
        else:
            assert any(isinstance(r[i], NUMERIC) for r in rows for i in values), f"{where}: no numeric value"
        if "metric" in columns:
            m = columns.index("metric")
            assert all(isinstance(r[m], str) for r in rows), f"{where}: metric must be text"
    elif kind in ("stat", "gauge", "bargauge", "piechart"):
        numeric = [v for r in rows for v in r if isinstance(v, NUMERIC) and not isinstance(v, bool)]
        assert numeric, f"{where}: no numeric value in {rows[:2]}"
    elif kind == "barchart":
        assert any(isinstance(v, str) for v in rows[0]), f"{where}: bar chart needs a text category"
        assert any(isinstance(v, NUMERIC) for r in rows for v in r), f"{where}: bar chart needs a number"
    else:
        assert kind == "table", f"{where}: unexpected panel kind {kind}"


def test_every_variable_has_options(demo: FilledPlant, all_selected: dict[str, dict[str, VariableValue]]) -> None:
    for dash in PLANT_AND_PLATFORM:
        chosen = all_selected[dash.uid]
        for var in dash.variables:
            if var.kind != "datasource":
                assert chosen[var.name].values, f"{dash.uid}: {var.name} has no options"
    overview = all_selected["df-plant-overview"]
    assert overview["line"].values == ("assembly/line-1", "machining/line-1")
    assert set(overview["shift"].values) == {"day", "night"}
    assert len(all_selected["df-machine-detail"]["machine"].values) == 8  # the meter is not a machine


@pytest.mark.parametrize("pq", PANEL_QUERIES, ids=[pq.name for pq in PANEL_QUERIES])
def test_panel_query_returns_rows(pq: PanelQuery, demo: FilledPlant,
                                  all_selected: dict[str, dict[str, VariableValue]]) -> None:
    text = expanded_sql(pq, all_selected[pq.dashboard.uid], demo.start, demo.end)
    assert not leftover(text), f"{pq.name}: unexpanded {leftover(text)}"
    assert "time_bucket" not in text, "TimescaleDB-only function; use date_bin"
    columns, rows = _run(demo.url, text)
    _assert_shape(pq, columns, rows)


def test_single_selection_and_short_range(demo: FilledPlant) -> None:
    """One machine, one shift, the last day: every query still runs (variables quoted right) — and the
    time-filtered ones only see that day."""
    start = demo.end - timedelta(days=1)
    with psycopg.connect(demo.url) as conn:
        chosen = {d.uid: resolve_variables(conn, d, start, demo.end, pick_first=True) for d in PLANT_AND_PLATFORM}
        for pq in PANEL_QUERIES:
            text = expanded_sql(pq, chosen[pq.dashboard.uid], start, demo.end)
            conn.execute(text).fetchall()
        text = expanded_sql(next(p for p in PANEL_QUERIES if p.panel.title == "Good and rejected units per hour"),
                            chosen["df-machine-detail"], start, demo.end)
        times = [r[0] for r in conn.execute(text).fetchall()]
    assert times and min(times) >= start and max(times) <= demo.end


def test_downsampling_bounds_raw_rows(demo: FilledPlant, all_selected: dict[str, dict[str, VariableValue]]) -> None:
    """Raw-signal panels return at most ~1000 points per series over the whole range, not every sample."""
    pq = next(p for p in PANEL_QUERIES if p.panel.title == "Temperature")
    _, rows = _run(demo.url, expanded_sql(pq, all_selected[pq.dashboard.uid], demo.start, demo.end))
    per_series: dict[str, int] = {}
    for _, metric, _value in rows:
        per_series[str(metric)] = per_series.get(str(metric), 0) + 1
    assert len(per_series) == 8
    assert max(per_series.values()) <= 1001
    assert min(per_series.values()) > 100  # still a useful resolution
