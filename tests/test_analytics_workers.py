"""Analytics workers sharing a run through the work table (analytics/work.py, issue 24): three real
``analytics run --worker`` processes on one database, one of them SIGKILLed while it holds a plant, give exactly the
results of the single-process ``analytics run`` on an identical copy of the data — every row of every result table.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from analytics import work
from analytics.tables import TABLES
from datafactory.db import registry
from datafactory.db.connect import connect, database_name, with_database
from simulator.backfill import backfill
from simulator.layout import demo_layout
from simulator.model import SimOptions
from tests.conftest import PG_SERVER, _admin
from tests.test_analytics_sim import _drop, _new_db

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]
PLANTS = 4
START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # Monday 08:00 in Asia/Shanghai: a day shift with breaks
HOURS = 2
LEASE_S = 3
COMPARED = (*TABLES, "alerts", "analytics_watermarks", "samples_hourly")


def _analytics(url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "app", "analytics", "--database-url", url, "run", *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _rows(url: str, table: str) -> list[tuple[Any, ...]]:
    """Every row, without the columns the database stamps itself (ids, now())."""
    with psycopg.connect(url) as conn:
        cols = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name = %s AND coalesce(column_default, '') NOT SIMILAR TO '%%(now\\(\\)|nextval)%%'"
            " ORDER BY ordinal_position", (table,)).fetchall()]
        listed = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
        query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
            listed, sql.Identifier(table), sql.SQL(", ").join(sql.Literal(i + 1) for i in range(len(cols))))
        return conn.execute(query).fetchall()


def _copy(url: str) -> str:
    name = f"dft_an_{uuid.uuid4().hex[:10]}"
    with _admin() as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                     (database_name(url),))
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(database_name(url))))
    return with_database(PG_SERVER, name)


def _wait_for_a_lease(url: str, names: set[str], timeout_s: float = 60) -> tuple[str, int]:
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT leased_by, plant_id FROM analytics_work WHERE leased_by = ANY(%s)"
                               " ORDER BY claimed_at LIMIT 1", (list(names),)).fetchone()
            if row is not None:
                return str(row[0]), int(row[1])
            time.sleep(0.02)
    raise AssertionError("no worker claimed a plant")


def test_three_workers_one_killed_give_the_results_of_one(template_db: str) -> None:
    shared = _new_db(template_db)
    single = ""
    procs: dict[str, subprocess.Popen[str]] = {}
    one: subprocess.Popen[str] | None = None
    try:
        for i in range(PLANTS):
            layout = replace(demo_layout(), enterprise=f"city-{i}", site=f"plant-{i}")
            backfill(shared, layout, SimOptions(seed=40 + i, analog_period_s=60.0), start=START,
                     end=START + timedelta(hours=HOURS))
        single = _copy(shared)

        one = _analytics(single)  # the reference, on the copy, at the same time
        procs = {f"w{i}": _analytics(shared, "--worker", "--name", f"w{i}", "--lease", str(LEASE_S))
                 for i in range(3)}
        victim, plant = _wait_for_a_lease(shared, set(procs))
        os.kill(procs[victim].pid, signal.SIGKILL)
        outputs = {}
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=120)
            outputs[name] = out
            if name != victim:
                assert proc.returncode == 0, err
        assert procs[victim].returncode == -signal.SIGKILL

        with psycopg.connect(shared) as conn:
            work = {r[0]: r[1:] for r in conn.execute(
                "SELECT plant_id, claims, leased_by, done_claimed_at >= requested_at, failures FROM analytics_work")}
        assert len(work) == PLANTS
        assert all(w[1:] == (None, True, 0) for w in work.values()), work  # all done, no lease left, no failure
        assert work[plant][0] == 2, "the killed worker's plant was claimed once more"
        assert sum(w[0] for w in work.values()) == PLANTS + 1, "every other plant was computed exactly once"
        survivors = [outputs[n] for n in procs if n != victim]
        assert all(survivors), "both surviving workers computed plants"
        assert sum(len(o.splitlines()) for o in survivors) == PLANTS

        out, err = one.communicate(timeout=120)
        assert one.returncode == 0, err
        assert len(out.splitlines()) == PLANTS
        for table in COMPARED:
            mine, theirs = _rows(shared, table), _rows(single, table)
            assert mine == theirs, f"{table}: {len(mine)} rows from the workers, {len(theirs)} from one process"
        # Each plant's run refreshed the hourly roll-up of its own signals (0801): together, what the city-wide
        # refresh (0500) of the same hours writes.
        per_plant = _rows(single, "samples_hourly")
        with psycopg.connect(single) as conn:
            conn.execute("SELECT df_rollup_samples_hourly(%s, %s)", (START, START + timedelta(hours=HOURS)))
            conn.commit()
        assert per_plant == _rows(single, "samples_hourly") and len(per_plant) > PLANTS * 60 * HOURS / 2
        assert len(_rows(shared, "oee")) > PLANTS * 8 * HOURS  # hours, the shift, the day and month, per machine
    finally:
        for proc in [*procs.values(), *([one] if one else [])]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        _drop(shared)
        if single:
            _drop(single)


def _plants(url: str, n: int) -> list[int]:
    with psycopg.connect(url) as conn:
        return [registry.upsert_plant(conn, f"e{i}", "site") for i in range(n)]


def test_concurrent_claims_never_take_the_same_unit(db_url: str) -> None:
    """Eight threads on their own connections claim from one round of 40 units at once: every unit once."""
    ids = _plants(db_url, 40)
    with connect(db_url) as conn:
        assert work.open_round(conn, None, None) == 0.0
        assert work.pending(conn, None) == 40
    claimed: list[list[int]] = [[] for _ in range(8)]
    barrier = threading.Barrier(8)

    def worker(k: int) -> None:
        with connect(db_url) as conn:
            barrier.wait()
            while (c := work.claim(conn, f"t{k}", None, 60.0)) is not None:
                claimed[k].append(c.plant_id)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    every = [p for mine in claimed for p in mine]
    assert sorted(every) == sorted(ids), "each unit claimed exactly once"
    assert sum(1 for mine in claimed if mine) > 1, "the claims were spread over the threads"


def test_a_lease_excludes_others_until_it_expires_and_the_stale_holder_cannot_commit(db_url: str) -> None:
    a_id, b_id = _plants(db_url, 2)
    with connect(db_url) as conn:
        work.open_round(conn, None, None)
        a = work.claim(conn, "A", None, 1.0)
        b = work.claim(conn, "B", None, 1.0)
        assert a is not None and b is not None and {a.plant_id, b.plant_id} == {a_id, b_id}
        assert work.claim(conn, "C", None, 60.0) is None, "a live lease is not claimable"
        time.sleep(1.3)  # A and B stopped heartbeating (as if killed): their leases expire
        c = work.claim(conn, "C", None, 60.0)
        assert c is not None and c.token == (a if c.plant_id == a.plant_id else b).token + 1
        stale = a if c.plant_id == a.plant_id else b
        # The stale holder finishes late: its completion (and so its results' commit) is refused...
        assert not work.complete(conn, stale, 1.0)
        conn.rollback()
        # ...which is what the token adds: the same completion keyed on the plant alone would have gone through.
        unfenced = conn.execute("UPDATE analytics_work SET done_at = clock_timestamp() WHERE plant_id = %s",
                                (stale.plant_id,))
        assert unfenced.rowcount == 1
        conn.rollback()
        assert work.complete(conn, c, 1.0)
        conn.commit()
        assert work.pending(conn, None) == 1
        other = work.claim(conn, "C", None, 60.0)
        assert other is not None and work.complete(conn, other, 1.0)
        conn.commit()
        assert work.pending(conn, None) == 0
        assert work.open_round(conn, None, 3600.0) > 3500, "with --every, no new round before it is due"
        assert work.pending(conn, None) == 0
        assert work.open_round(conn, None, None) == 0.0 and work.pending(conn, None) == 2, "a one-shot opens one"


def test_sigterm_gives_the_plant_back_at_once(template_db: str) -> None:
    """A worker stopped with SIGTERM (Docker, systemd) releases its lease: the plant need not wait for expiry."""
    url = _new_db(template_db)
    try:
        layout = replace(demo_layout(), enterprise="city-t", site="plant-t")
        backfill(url, layout, SimOptions(seed=7, analog_period_s=60.0), start=START, end=START + timedelta(hours=4))
        proc = _analytics(url, "--worker", "--name", "w-term", "--lease", "600")
        name, plant = _wait_for_a_lease(url, {"w-term"})
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT leased_by, lease_until, claims, done_claimed_at FROM analytics_work"
                               " WHERE plant_id = %s", (plant,)).fetchone()
            assert row == (None, None, 1, None), err
            assert conn.execute("SELECT count(*) FROM oee").fetchone() == (0,), "nothing of the run was committed"
        assert name == "w-term"
    finally:
        _drop(url)
