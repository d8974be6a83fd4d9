"""Reads off the primary: the plant and bureau dashboards run on a real streaming replica (``pg_basebackup`` of a
private primary, both on loopback), analytics' writes are refused there, and the platform dashboard — which stays
on the primary — shows the replica and its lag.

A private primary (not the shared server): making a replica needs a replication connection and a base backup of
the whole cluster.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from app.harness.postgres import LocalPostgres
from benchmarks.dashboards import FilledPlant, fill_database
from datafactory.db.connect import with_database
from datafactory.db.migrate import migrate
from datafactory.db.rls import provision
from datafactory.db.roles import ADMIN, BUREAU, plant_role_name
from grafana.dashboards import BUREAU as BUREAU_DASHBOARDS
from grafana.dashboards import PLANT_AND_PLATFORM
from grafana.expand import leftover
from grafana.panel_queries import expanded_sql, panel_queries, resolve_variables
from tests.support.roles import act_as, reset_role
from tests.test_grafana_bureau import END as BUREAU_END
from tests.test_grafana_bureau import START as BUREAU_START
from tests.test_grafana_bureau import _seed as seed_bureau
from tests.test_grafana_queries import PLANT_QUERIES, _panel_problems

# One worker builds the pair once for the whole module.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.xdist_group("replica")]

DATABASE = "datafactory"


@dataclass
class Pair:
    primary: str  # URL of the database on the primary
    replica: str  # the same database on the replica
    filled: FilledPlant
    replica_server: LocalPostgres


def _replayed(primary: str, replica: str, timeout_s: float = 60.0) -> None:
    """Wait until the replica has replayed everything the primary has written so far."""
    with psycopg.connect(primary, autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    target = row[0]
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(replica, autocommit=True) as conn:
        while True:
            done = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)).fetchone()
            if done and done[0]:
                return
            assert time.monotonic() < deadline, f"replica did not replay up to {target} in {timeout_s} s"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    base: Path = tmp_path_factory.mktemp("replica")
    with LocalPostgres(base / "primary", fsync=False) as primary:
        with psycopg.connect(primary.url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        url = with_database(primary.url, DATABASE)
        migrate(url)
        filled = fill_database(url, days=6.0)  # as the dashboard test: baseline, CUSUM and a bearing alert
        with psycopg.connect(url) as conn:
            seed_bureau(conn)
            provision(conn, actor="test-replica")
            conn.commit()
        with LocalPostgres(base / "standby", fsync=False, standby_of=primary.url) as standby:
            replica = with_database(standby.url, DATABASE)
            _replayed(url, replica)
            yield Pair(url, replica, filled, standby)


def test_the_replica_is_a_read_only_standby(pair: Pair) -> None:
    with psycopg.connect(pair.replica, autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO analytics_watermarks (plant_id, job, watermark) SELECT plant_id, 'x', now()"
                         " FROM analytics_watermarks LIMIT 1")
    # What the primary writes reaches the replica.
    with psycopg.connect(pair.primary, autocommit=True) as conn:
        conn.execute("UPDATE analytics_watermarks SET updated_at = '2030-01-01T00:00:00Z'")
    _replayed(pair.primary, pair.replica)
    with psycopg.connect(pair.replica, autocommit=True) as conn:
        assert conn.execute("SELECT DISTINCT updated_at::text FROM analytics_watermarks").fetchall() == [
            ("2030-01-01 00:00:00+00",)]


def test_plant_and_bureau_dashboards_run_on_the_replica_through_their_roles(pair: Pair) -> None:
    filled = pair.filled
    with psycopg.connect(pair.replica, autocommit=True) as conn:
        role = plant_role_name("demo-precision", "dongguan-1")
        act_as(conn, role)
        try:
            plant = tuple(d for d in PLANT_AND_PLATFORM if d.folder == "plant")
            chosen = {d.uid: resolve_variables(conn, d, filled.start, filled.end) for d in plant}
            problems = _panel_problems(conn, PLANT_QUERIES, chosen, filled.start, filled.end)
            assert not problems, f"as {role} on the replica:\n" + "\n".join(problems)
            # Row-level security replicates with the data: no other plant's rows, even on the replica.
            assert conn.execute("SELECT count(DISTINCT plant_id) FROM signals").fetchone() == (1,)
        finally:
            reset_role(conn)
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(BUREAU)))
        try:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT count(*) FROM bureau_published_cells")  # the raw table stays closed
            for dash in BUREAU_DASHBOARDS:
                variables = resolve_variables(conn, dash, BUREAU_START, BUREAU_END)
                for pq in panel_queries((dash,)):
                    text = expanded_sql(pq, variables, BUREAU_START, BUREAU_END)
                    assert not leftover(text), pq.name
                    assert conn.execute(text).fetchall(), f"{pq.name}: no rows on the replica"
        finally:
            conn.execute("RESET ROLE")


def _replicas_panel(conn: psycopg.Connection) -> list[tuple[object, ...]]:
    pq = next(pq for pq in panel_queries(PLANT_AND_PLATFORM) if pq.panel.title == "Read replicas")
    return conn.execute(pq.query.sql).fetchall()  # no variables or macros in it


def test_platform_health_shows_the_replica_and_its_lag(pair: Pair) -> None:
    with psycopg.connect(pair.primary, autocommit=True) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(ADMIN)))  # the operators' role, not a superuser
        # An idle replica's replay_lag is NULL until it replays WAL the primary wrote (a checkpoint or autovacuum
        # record, say) and reports it; the panel shows 0 only when nothing is left to replay. Under load a sample can
        # fall in between: wait for a measured lag, as an operator refreshing the panel would see it.
        deadline = time.monotonic() + 30
        while (rows := _replicas_panel(conn)) and len(rows) == 1 and rows[0][4] is None:
            assert time.monotonic() < deadline, rows
            time.sleep(0.2)
        assert len(rows) == 1, rows
        _replica, client, state, sync, lag, behind = rows[0]
        assert (client, state, sync) == ("127.0.0.1", "streaming", "async")
        assert isinstance(lag, float) and 0 <= lag < 30
        assert isinstance(behind, Decimal) and behind >= 0
        conn.execute("RESET ROLE")
    pair.replica_server.stop()
    with psycopg.connect(pair.primary, autocommit=True) as conn:
        deadline = time.monotonic() + 30
        while (rows := _replicas_panel(conn))[0][2] != "no streaming replica":
            assert time.monotonic() < deadline, rows
            time.sleep(0.2)
        assert rows == [("-", None, "no streaming replica", None, None, None)]
