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
from bureau.catalog.freshness import check as check_freshness
from datafactory.db.connect import with_database
from grafana.dashboards import PLANT_AND_PLATFORM
from grafana.expand import VariableValue, expand, leftover
from grafana.panel_queries import PanelQuery, expanded_sql, panel_queries, resolve_variables
from tests.conftest import PG_SERVER
from tests.support.roles import act_as, reset_role

pytestmark = pytest.mark.integration

DAYS = 6.0
NUMERIC = (int, float)
PANEL_QUERIES = list(panel_queries(PLANT_AND_PLATFORM))
PLANT_QUERIES = [pq for pq in PANEL_QUERIES if pq.dashboard.folder == "plant"]


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
    the config/status/health/dead-letter rows ingest writes, and one freshness check of the catalogue's monitor."""
    with scratch_database(template_db) as url:
        filled = fill_database(url, days=DAYS)
        with psycopg.connect(url) as conn:
            # Half an hour after the backfill's end, its samples (due 5 min after their newest) are late, so an
            # alert is open, while the hourly results (due 2 h after theirs) are still on time: both states show.
            checked = check_freshness(conn, now=filled.end + timedelta(minutes=30))
        assert {f.status for f in checked} >= {"late", "fresh"}, checked
        yield filled


def _run(conn: psycopg.Connection, text: str) -> tuple[list[str], list[tuple[object, ...]]]:
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


def test_dashboards_on_the_demo_plant(demo: FilledPlant) -> None:
    """One test on purpose: the filled database is expensive, and under pytest-xdist every worker that ran a test
    of this module would fill its own. Problems of all panels are collected and reported together."""
    with psycopg.connect(demo.url, autocommit=True) as conn:
        chosen = {d.uid: resolve_variables(conn, d, demo.start, demo.end) for d in PLANT_AND_PLATFORM}
        _check_variables(chosen)
        problems = _panel_problems(conn, PANEL_QUERIES, chosen, demo.start, demo.end)
        assert not problems, "\n".join(problems)
        _check_single_selection(conn, demo)
        _check_downsampling(conn, chosen, demo)
        _check_as_plant_role(conn, demo)
        _check_platform_as_admin_role(conn, demo)


def _panel_problems(conn: psycopg.Connection, queries: list[PanelQuery], chosen: dict[str, dict[str, VariableValue]],
                    start: datetime, end: datetime) -> list[str]:
    problems = []
    for pq in queries:
        text = expanded_sql(pq, chosen[pq.dashboard.uid], start, end)
        try:
            assert not leftover(text), f"{pq.name}: unexpanded {leftover(text)}"
            assert "time_bucket" not in text, f"{pq.name}: TimescaleDB-only time_bucket; use date_bin"
            _assert_shape(pq, *_run(conn, text))
        except (AssertionError, psycopg.Error) as err:
            problems.append(f"{pq.name}: {err}")
    return problems


def _check_variables(chosen: dict[str, dict[str, VariableValue]]) -> None:
    for dash in PLANT_AND_PLATFORM:
        for var in dash.variables:
            if var.kind != "datasource":
                assert chosen[dash.uid][var.name].values, f"{dash.uid}: {var.name} has no options"
    overview = chosen["df-plant-overview"]
    assert overview["line"].values == ("assembly/line-1", "machining/line-1")
    assert set(overview["shift"].values) == {"day", "night"}
    assert len(chosen["df-machine-detail"]["machine"].values) == 8  # the meter is not a machine
    assert "utilities/main" in chosen["df-energy"]["line"].values  # …but energy includes it


def _check_single_selection(conn: psycopg.Connection, demo: FilledPlant) -> None:
    """One machine, one shift, the last day: every query still runs (variables quoted right), and the
    time-filtered ones only see that day."""
    start = demo.end - timedelta(days=1)
    chosen = {d.uid: resolve_variables(conn, d, start, demo.end, pick_first=True) for d in PLANT_AND_PLATFORM}
    assert len(chosen["df-machine-detail"]["machine"].values) == 1
    for pq in PANEL_QUERIES:
        conn.execute(expanded_sql(pq, chosen[pq.dashboard.uid], start, demo.end)).fetchall()
    counts = next(p for p in PANEL_QUERIES if p.panel.title == "Good and rejected units per hour")
    times = [r[0] for r in _run(conn, expanded_sql(counts, chosen["df-machine-detail"], start, demo.end))[1]
             if isinstance(r[0], datetime)]
    assert times and min(times) >= start and max(times) <= demo.end


def _check_downsampling(conn: psycopg.Connection, chosen: dict[str, dict[str, VariableValue]],
                        demo: FilledPlant) -> None:
    """Raw-signal panels return at most ~1000 points per series over the whole range, not every sample."""
    pq = next(p for p in PANEL_QUERIES if p.panel.title == "Temperature")
    _, rows = _run(conn, expanded_sql(pq, chosen[pq.dashboard.uid], demo.start, demo.end))
    per_series: dict[str, int] = {}
    for _, metric, _value in rows:
        per_series[str(metric)] = per_series.get(str(metric), 0) + 1
    assert len(per_series) == 8
    assert max(per_series.values()) <= 1001
    assert min(per_series.values()) > 100  # still a useful resolution
    # At a ≥ 1 h interval the same panel reads the hourly roll-up instead, with the same hourly means.
    text = expand(pq.query.sql, chosen[pq.dashboard.uid], demo.start, demo.end, min_interval="1h")
    hourly = _run(conn, text)[1]
    assert len(hourly) == pytest.approx(8 * DAYS * 24, rel=0.05)
    raw = _run(conn, text.replace("3600000 >= 3600000", "false").replace("3600000 < 3600000", "true"))[1]
    assert [(t, m) for t, m, _ in raw] == [(t, m) for t, m, _ in hourly]
    assert all(abs(float(a[2]) - float(b[2])) < 1e-6 for a, b in zip(raw, hourly, strict=True))  # type: ignore[arg-type]


def _check_as_plant_role(conn: psycopg.Connection, demo: FilledPlant) -> None:
    """The plant dashboards work through the plant's row-level-secured role (what its data source logs in as):
    after ``db roles`` provisioning, every plant panel still has rows."""
    from datafactory.db.rls import provision
    from datafactory.db.roles import plant_role_name

    provision(conn, actor="test-grafana")
    act_as(conn, plant_role_name("demo-precision", "dongguan-1"))
    try:
        plant_dashboards = tuple(d for d in PLANT_AND_PLATFORM if d.folder == "plant")
        chosen = {d.uid: resolve_variables(conn, d, demo.start, demo.end) for d in plant_dashboards}
        problems = _panel_problems(conn, PLANT_QUERIES, chosen, demo.start, demo.end)
        assert not problems, "as the plant role:\n" + "\n".join(problems)
    finally:
        reset_role(conn)


def _check_platform_as_admin_role(conn: psycopg.Connection, demo: FilledPlant) -> None:
    """The platform dashboard also works as ``df_admin`` (the operators' role, for a platform data source that does
    not log in as the owner): its grants after ``db roles`` cover every table it reads, the freshness monitor's
    ``dataset_freshness`` and ``dataset_alerts`` included. Runs after ``_check_as_plant_role`` provisioned them."""
    from datafactory.db.roles import ADMIN

    platform = tuple(d for d in PLANT_AND_PLATFORM if d.folder == "platform")
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(ADMIN)))
    try:
        chosen = {d.uid: resolve_variables(conn, d, demo.start, demo.end) for d in platform}
        queries = [pq for pq in PANEL_QUERIES if pq.dashboard.folder == "platform"]
        assert any("dataset_alerts" in pq.query.sql for pq in queries)
        problems = _panel_problems(conn, queries, chosen, demo.start, demo.end)
        assert not problems, f"as {ADMIN}:\n" + "\n".join(problems)
    finally:
        conn.execute("RESET ROLE")
