"""Shared fixtures: every test gets its own database (cloned from a migrated template) and its own
enterprise name, hence its own topic prefix, so tests can run in parallel against the shared services.

Services: DATAFACTORY_TEST_PG (server URL without database, default postgresql://postgres@127.0.0.1:5432)
and DATAFACTORY_MQTT_URL (default mqtt://127.0.0.1:1883) — the real PostgreSQL and Mosquitto.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from datafactory.db import timescale
from datafactory.db.connect import with_database
from datafactory.db.migrate import migrate

PG_SERVER = os.environ.get("DATAFACTORY_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
MQTT_URL = os.environ.get("DATAFACTORY_MQTT_URL", "mqtt://127.0.0.1:1883")


def _admin() -> psycopg.Connection:
    return psycopg.connect(with_database(PG_SERVER, "postgres"), autocommit=True)


def _server_has_timescaledb() -> bool:
    with _admin() as conn:
        return timescale.probe(conn) is timescale.ServerState.READY


SERVER_HAS_TIMESCALEDB = _server_has_timescaledb()


def pytest_runtest_setup(item: pytest.Item) -> None:
    # Tests of the plain-PostgreSQL storage mode (daily partitions) have nothing to check on TimescaleDB.
    if SERVER_HAS_TIMESCALEDB and item.get_closest_marker("plain_postgres"):
        pytest.skip("tests the plain-PostgreSQL storage mode (daily partitions); this server has TimescaleDB")


@pytest.fixture(scope="session")
def template_db(worker_id: str) -> Iterator[str]:
    """A migrated database used as CREATE DATABASE … TEMPLATE for each test's own database."""
    name = f"dft_tpl_{worker_id}_{uuid.uuid4().hex[:6]}"
    url = with_database(PG_SERVER, name)
    migrate(url)
    with _admin() as conn:
        # CREATE DATABASE … TEMPLATE fails while anyone is connected to the template, and TimescaleDB's job
        # scheduler connects to every database with the extension: close the template to new connections and
        # end the ones already there.
        conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false IS_TEMPLATE true").format(
            sql.Identifier(name)))
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
    yield name
    with _admin() as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def db_url(template_db: str) -> Iterator[str]:
    """URL of a fresh, migrated database of this test's own; dropped afterwards."""
    name = f"dft_{uuid.uuid4().hex[:10]}"
    with _admin() as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template_db))
        )
        _copy_database_settings(conn, template_db, name)
    yield with_database(PG_SERVER, name)
    with _admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _copy_database_settings(conn: psycopg.Connection, source: str, target: str) -> None:
    """``CREATE DATABASE … TEMPLATE`` copies the contents, not what ``ALTER DATABASE … SET`` gave the template
    (migrate sets TimescaleDB's compressed batch size there): copy those so a test database is configured as
    migrate leaves one."""
    rows = conn.execute(
        "SELECT unnest(setconfig) FROM pg_db_role_setting WHERE setrole = 0"
        " AND setdatabase = (SELECT oid FROM pg_database WHERE datname = %s)",
        (source,),
    ).fetchall()
    for (cfg,) in rows:
        key, value = str(cfg).split("=", 1)
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                sql.Identifier(target), sql.SQL(".").join(sql.Identifier(p) for p in key.split(".")), sql.Literal(value)
            )
        )


@pytest.fixture
def mqtt_url() -> str:
    return MQTT_URL


@pytest.fixture
def enterprise() -> str:
    """An enterprise name unique to this test: its topics df/v1/<enterprise>/# are the test's own."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def worker_id(request: pytest.FixtureRequest) -> str:
    """xdist worker id ('gw0', …) or 'main' without xdist."""
    return getattr(request.config, "workerinput", {}).get("workerid", "main")
