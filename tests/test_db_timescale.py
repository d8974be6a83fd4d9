"""``db migrate`` in every server state, and cheap when nothing changed.

States: no TimescaleDB (CI's plain PostgreSQL), TimescaleDB listed but not preloaded, TimescaleDB preloaded.
Tests that need a TimescaleDB server run when DATAFACTORY_TEST_PG points at one and are skipped otherwise; the
not-preloaded state needs a server of its own (DATAFACTORY_TEST_PG_NOT_PRELOADED), also skipped without it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from datafactory.db import timescale
from datafactory.db.connect import drop_database, with_database
from datafactory.db.migrate import migrate
from datafactory.settings import Settings
from tests.conftest import PG_SERVER

pytestmark = pytest.mark.integration

NOT_PRELOADED = os.environ.get("DATAFACTORY_TEST_PG_NOT_PRELOADED")


def _server_state(server: str) -> timescale.ServerState:
    with psycopg.connect(with_database(server, "postgres"), autocommit=True) as conn:
        return timescale.probe(conn)


ON_TIMESCALE = _server_state(PG_SERVER) is timescale.ServerState.READY
needs_timescale = pytest.mark.skipif(not ON_TIMESCALE, reason="needs a TimescaleDB server (DATAFACTORY_TEST_PG)")


@pytest.fixture
def fresh_url() -> Iterator[str]:
    url = with_database(PG_SERVER, f"dft_ts_{uuid.uuid4().hex[:10]}")
    yield url
    drop_database(url)


def test_migrate_uses_what_the_server_offers(fresh_url: str) -> None:
    result = migrate(fresh_url)
    with psycopg.connect(fresh_url) as conn:
        kind = conn.execute("SELECT relkind FROM pg_class WHERE relname = 'samples'").fetchone()
        if ON_TIMESCALE:
            assert result.timescale
            assert timescale.is_hypertable(conn, "samples")
        else:
            assert not result.timescale
            assert kind == ("p",)  # partitioned by day


def test_second_migrate_waits_for_no_reader(fresh_url: str) -> None:
    """With a long read open on samples (as a dashboard holds one), a migrate with nothing to do returns at once."""
    migrate(fresh_url)
    reader = psycopg.connect(fresh_url)
    reader.execute("SELECT count(*) FROM samples").fetchone()  # AccessShareLock held until the transaction ends
    done = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            migrate(fresh_url)
        except BaseException as err:  # reported by the assertion below
            errors.append(err)
        finally:
            done.set()

    started = time.monotonic()
    threading.Thread(target=run, daemon=True).start()
    finished = done.wait(15)
    elapsed = time.monotonic() - started
    reader.rollback()
    reader.close()
    assert not errors, errors
    assert finished, "migrate waited behind an open read on samples: it asked for a strong lock with nothing to do"
    assert elapsed < 10


@needs_timescale
def test_policies_changed_in_place_only_when_settings_differ(fresh_url: str) -> None:
    migrate(fresh_url, Settings(timescale_compress_after="7 days", timescale_retention_days=None))

    def jobs() -> dict[str, tuple[int, str]]:
        with psycopg.connect(fresh_url) as conn:
            rows = conn.execute(
                "SELECT proc_name, job_id, config::text FROM timescaledb_information.jobs"
                " WHERE hypertable_name = 'samples'"
            ).fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}

    first = jobs()
    assert set(first) == {"policy_compression"}
    migrate(fresh_url, Settings(timescale_compress_after="7 days", timescale_retention_days=None))
    assert jobs() == first  # nothing changed: same job, same config

    migrate(fresh_url, Settings(timescale_compress_after="3 days", timescale_retention_days=400))
    second = jobs()
    assert second["policy_compression"][0] == first["policy_compression"][0]  # same job id, history kept
    assert '"3 days"' in second["policy_compression"][1]
    assert '"400 days"' in second["policy_retention"][1]

    migrate(fresh_url, Settings(timescale_compress_after="3 days", timescale_retention_days=None))
    assert set(jobs()) == {"policy_compression"}


@pytest.mark.skipif(not NOT_PRELOADED, reason="needs a server with TimescaleDB listed but not preloaded")
def test_listed_but_not_preloaded_falls_back_with_the_hint(caplog: pytest.LogCaptureFixture) -> None:
    assert NOT_PRELOADED
    assert _server_state(NOT_PRELOADED) is timescale.ServerState.NOT_PRELOADED
    url = with_database(NOT_PRELOADED, f"dft_np_{uuid.uuid4().hex[:10]}")
    try:
        with caplog.at_level(logging.WARNING, logger="datafactory.db.timescale"):
            result = migrate(url)
        assert not result.timescale
        assert any("shared_preload_libraries" in r.getMessage() for r in caplog.records)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT relkind FROM pg_class WHERE relname = 'samples'").fetchone() == ("p",)
            assert conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone() is None
        assert migrate(url).applied == []  # and again, still fine
    finally:
        drop_database(url)
