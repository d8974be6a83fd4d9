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
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from datafactory.db import registry, timescale
from datafactory.db.connect import drop_database, with_database
from datafactory.db.migrate import migrate
from datafactory.db.rls import provision
from datafactory.db.samples import copy_rows
from datafactory.settings import Settings
from tests.conftest import PG_SERVER
from tests.support.roles import act_as, reset_role

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


def _two_plants(conn: psycopg.Connection, enterprise: str) -> tuple[int, int]:
    signals = []
    for site in ("a", "b"):
        plant = registry.upsert_plant(conn, enterprise, site)
        cell = registry.upsert_cell(conn, plant, "area", "line", "cell")
        signals.append(registry.upsert_signal(conn, plant, cell, "power", meaning="power_kw"))
    return signals[0], signals[1]


def _role(conn: psycopg.Connection, signal_id: int) -> str:
    row = conn.execute(
        "SELECT r.role FROM plant_roles r JOIN signals s ON s.plant_id = r.plant_id WHERE s.id = %s", (signal_id,)
    ).fetchone()
    assert row is not None
    return str(row[0])


@needs_timescale
def test_hourly_rollup_is_a_continuous_aggregate_each_plant_sees_its_own(db_url: str, enterprise: str) -> None:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    with psycopg.connect(db_url) as conn:
        a, b = _two_plants(conn, enterprise)
        rows = [(sig, hour + timedelta(minutes=m), float(m % 7) + sig, 0) for sig in (a, b) for m in range(0, 120, 3)]
        copy_rows(conn, rows)
        conn.commit()
        provision(conn, actor="test")
        assert "samples_hourly" in timescale.continuous_aggregates(conn)
    with psycopg.connect(db_url, autocommit=True) as conn:
        timescale.refresh_hourly_rollup_now(conn)
        # A sample arriving after the refresh, in the current hour: real-time aggregation shows it at once.
        copy_rows(conn, [(a, datetime.now(UTC) - timedelta(seconds=5), 99.0, 0)])
        want = conn.execute(
            "SELECT signal_id, date_bin('1 hour', time, timestamptz '2000-01-01'), avg(value), min(value),"
            " max(value), count(*) FROM samples WHERE value IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        got = conn.execute("SELECT signal_id, time, avg, min, max, n FROM samples_hourly ORDER BY 1, 2").fetchall()
        assert got == want and len(got) == 5  # two hours per plant, plus plant A's current hour
        assert conn.execute("SELECT df_rollup_samples_hourly(now() - interval '1 day', now())").fetchone() == (0,)
        act_as(conn, _role(conn, a))
        seen = conn.execute("SELECT DISTINCT signal_id FROM samples_hourly").fetchall()
        assert seen == [(a,)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT 1 FROM public.samples_hourly LIMIT 1")
        reset_role(conn)


@needs_timescale
def test_compressed_chunks_late_writes_and_retention_keep_tenancy(db_url: str, enterprise: str) -> None:
    old = datetime.now(UTC).replace(microsecond=0) - timedelta(days=20)
    recent = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    with psycopg.connect(db_url) as conn:
        a, b = _two_plants(conn, enterprise)
        copy_rows(conn, [(sig, t + timedelta(minutes=m), float(m), 0)
                         for sig in (a, b) for t in (old, recent) for m in range(60)])
        conn.commit()
        provision(conn, actor="test")
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert timescale.compress_all(conn) >= 2
        compressed = conn.execute(
            "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'samples' AND is_compressed"
        ).fetchone()
        assert compressed is not None and compressed[0] >= 2
        # A late sample into a compressed chunk is stored and read back.
        copy_rows(conn, [(a, old + timedelta(minutes=90), 1234.5, 0)])
        act_as(conn, _role(conn, a))
        assert conn.execute("SELECT count(*), max(value) FROM samples WHERE signal_id = %s", (a,)).fetchone() == (
            121, 1234.5)
        assert conn.execute("SELECT count(*) FROM samples WHERE signal_id = %s", (b,)).fetchone() == (0,)
        assert conn.execute("SELECT DISTINCT signal_id FROM samples").fetchall() == [(a,)]
        reset_role(conn)
        conn.execute("SET ROLE bureau")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT 1 FROM samples LIMIT 1")
        conn.execute("RESET ROLE")
    # Retention drops the old, compressed chunks; the recent ones stay.
    migrate(db_url, Settings(timescale_retention_days=10))
    with psycopg.connect(db_url, autocommit=True) as conn:
        job = conn.execute(
            "SELECT job_id FROM timescaledb_information.jobs WHERE hypertable_name = 'samples'"
            " AND proc_name = 'policy_retention'"
        ).fetchone()
        assert job is not None
        conn.execute("CALL run_job(%s)", (job[0],))
        left = conn.execute("SELECT signal_id, count(*) FROM samples GROUP BY 1 ORDER BY 1").fetchall()
        assert left == [(a, 60), (b, 60)]
        act_as(conn, _role(conn, b))
        assert conn.execute("SELECT DISTINCT signal_id FROM samples").fetchall() == [(b,)]
        reset_role(conn)


def _largest_batch(conn: psycopg.Connection) -> int:
    """Rows in the largest compressed batch of ``samples`` (0 when nothing is compressed)."""
    chunks = conn.execute(
        "SELECT format('%I.%I', c.schema_name, c.table_name) FROM _timescaledb_catalog.chunk c"
        " JOIN _timescaledb_catalog.chunk u ON u.compressed_chunk_id = c.id"
        " JOIN _timescaledb_catalog.hypertable h ON h.id = u.hypertable_id WHERE h.table_name = 'samples'"
    ).fetchall()
    largest = 0
    for (chunk,) in chunks:
        row = conn.execute(f"SELECT coalesce(max(_ts_meta_count), 0) FROM {chunk}").fetchone()
        largest = max(largest, int(row[0]) if row else 0)
    return largest


@needs_timescale
def test_compression_policy_job_compresses_in_batches_of_the_configured_size(fresh_url: str) -> None:
    """The batch size is a session setting: set on the database by migrate, the policy's background job (not
    this session) must compress with it. With TimescaleDB's default the largest batch would be 1,000 rows."""
    migrate(fresh_url, Settings(timescale_compress_after="7 days", timescale_retention_days=None))
    with psycopg.connect(fresh_url) as conn:
        assert timescale.database_setting(conn, timescale.BATCH_SETTING) == str(timescale.BATCH_ROWS)
        assert conn.execute("SHOW timescaledb.compression_batch_size_limit").fetchone() == (str(timescale.BATCH_ROWS),)
        plant = registry.upsert_plant(conn, "batch-plant", "site")
        cell = registry.upsert_cell(conn, plant, "a", "l", "c")
        sig = registry.upsert_signal(conn, plant, cell, "temp")
        # 6,000 s of rows from 01:00 UTC stay inside one chunk (chunks start at UTC midnight): started at any
        # time of day they could straddle a chunk boundary, and each chunk would be compressed in its own batches.
        start = (datetime.now(UTC) - timedelta(days=20)).replace(hour=1, minute=0, second=0, microsecond=0)
        copy_rows(conn, [(sig, start + timedelta(seconds=s), round(20 + (s % 50) / 10, 1), 0) for s in range(6000)])
        conn.commit()
    assert migrate(fresh_url, Settings(timescale_compress_after="7 days", timescale_retention_days=None)).applied == []
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        job = conn.execute(
            "SELECT job_id FROM timescaledb_information.jobs WHERE hypertable_name = 'samples'"
            " AND proc_name = 'policy_compression'"
        ).fetchone()
        assert job is not None
        conn.execute("SELECT alter_job(%s, next_start => now())", (job[0],))
        deadline = time.monotonic() + 90
        while _largest_batch(conn) == 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _largest_batch(conn) == timescale.BATCH_ROWS
        values = conn.execute("SELECT count(*), sum(value) FROM samples WHERE signal_id = %s", (sig,)).fetchone()
        assert values is not None and values[0] == 6000
        assert values[1] == pytest.approx(sum(round(20 + (s % 50) / 10, 1) for s in range(6000)))
