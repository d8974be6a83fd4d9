"""``datafactory demo`` end to end: real simulator, gateway, broker, ingest and PostgreSQL, as a user runs it."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from app.harness import LocalPostgres
from app.harness.selection import DEMO_DATABASE
from datafactory.db.connect import with_database

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _demo(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DATAFACTORY_")}
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli.main", "demo", "--state-dir", str(tmp_path / "state"), *args],
        cwd=ROOT, env={**base, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 150) -> tuple[str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"demo did not finish in {timeout} s\n{out}\n{err[-3000:]}")
    return out, err


def _field(summary: str, label: str) -> int:
    match = re.search(rf"^\s+{label}\s+(\d+)", summary, re.MULTILINE)
    assert match, f"no '{label}' in the summary:\n{summary}"
    return int(match.group(1))


def _stored_in_db(url: str, enterprise: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT x.signal_id) FROM samples x JOIN signal_paths sp"
            " ON sp.signal_id = x.signal_id WHERE sp.enterprise = %s",
            (enterprise,),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_demo_embedded_stores_samples(tmp_path: Path) -> None:
    proc = _demo(tmp_path, "--embedded", "--duration", "15", "--speed", "30")
    out, err = _finish(proc)
    assert proc.returncode == 0, f"{out}\n{err[-3000:]}"
    assert "UNAVAILABLE" not in out and "FAILED" not in out, out
    assert "(embedded)" in err  # both services were the private ones
    stored = _field(out, "samples stored")
    assert stored > 0
    assert _field(out, "signals registered") > 0
    assert _field(out, "dead letters") == 0
    # Analytics ran on what was stored and the summary shows its OEE per machine.
    assert re.search(r"^\s+analytics\s+done$", out, re.MULTILINE), out
    assert "OEE (latest shift per machine, computed by this run)" in out
    clock = r"^\s+simulated clock\s+\d{4}-\d\d-\d\d .* UTC at 30x \(wall clock at the end"
    assert re.search(clock, out, re.MULTILINE), out
    assert "ahead of it)" not in out and "behind it)" in out  # simulated time stayed behind the wall clock
    assert "FROM downtime" not in out  # the embedded database is stopped: the summary says where its data is

    # The embedded PostgreSQL was stopped by the demo; its cluster is on disk: start it and count.
    with LocalPostgres(tmp_path / "state" / "pg") as pg:
        url = with_database(pg.url, DEMO_DATABASE)
        count, signals = _stored_in_db(url, "demo-precision")
        with psycopg.connect(url) as conn:
            future = conn.execute("SELECT count(*) FROM samples WHERE time > now()").fetchone()
    assert future == (0,)  # nothing from the future
    assert count == stored
    assert signals > 10  # machines' state, counters, power, energy, vibration, temperature and the meter


def test_demo_against_the_shared_services(tmp_path: Path, db_url: str, mqtt_url: str, enterprise: str) -> None:
    env = {"DATAFACTORY_DATABASE_URL": db_url, "DATAFACTORY_MQTT_URL": mqtt_url}
    proc = _demo(tmp_path, "--duration", "12", "--speed", "30", "--enterprise", enterprise, "--no-analytics", env=env)
    out, err = _finish(proc)
    assert proc.returncode == 0, f"{out}\n{err[-3000:]}"
    assert "(environment)" in err
    stored = _field(out, "samples stored")
    assert stored > 0
    count, _ = _stored_in_db(db_url, enterprise)
    assert count == stored
    # The summary says where the data is, without a password, and how to query it.
    assert f"data      {db_url}" in out
    assert "psql" in out and "FROM oee" in out and "FROM downtime" in out and "FROM alerts" in out
    assert "not computed by this run (analytics skipped (--no-analytics))" in out  # no OEE of earlier runs

    # A rerun on the same data: its simulated time overlaps the first run's instead of running into the future.
    again = _demo(tmp_path, "--duration", "6", "--speed", "30", "--enterprise", enterprise, "--no-analytics", env=env)
    out2, err2 = _finish(again)
    assert again.returncode == 0, f"{out2}\n{err2[-3000:]}"
    assert "note: an earlier run stored data up to" in err2 and "ends behind the wall clock" in err2
    assert "ahead of it)" not in out2 and "(by this run)" in out2
    with psycopg.connect(db_url) as conn:
        future = conn.execute(
            "SELECT count(*) FROM samples x JOIN signal_paths sp ON sp.signal_id = x.signal_id"
            " WHERE sp.enterprise = %s AND x.time > now()", (enterprise,)
        ).fetchone()
    assert future == (0,)
    assert _stored_in_db(db_url, enterprise)[0] == stored + _field(out2, "samples stored")


def _names(processes: list[psutil.Process]) -> set[str]:
    names = set()
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):  # a short-lived helper (initdb) that has exited
            names.add(process.name())
    return names


def test_ctrl_c_stops_everything(tmp_path: Path) -> None:
    proc = _demo(tmp_path, "--embedded", "--duration", "120", "--speed", "30")
    demo = psutil.Process(proc.pid)
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            children = demo.children()
            if len(children) >= 5 and {"postgres", "mosquitto"} <= _names(children):
                break
            time.sleep(0.5)
        # postgres, mosquitto, ingest, simulator, gateway: every process the demo started, with their children.
        descendants = demo.children(recursive=True)
    except psutil.NoSuchProcess:
        out, err = _finish(proc)
        pytest.fail(f"the demo exited before it was interrupted:\n{out}\n{err[-3000:]}")
    assert {"postgres", "mosquitto"} <= _names(descendants), descendants
    assert len(demo.children()) >= 5, demo.children()
    time.sleep(2)
    started = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)
    out, err = _finish(proc, timeout=90)
    assert time.monotonic() - started < 60
    assert proc.returncode == 130, err[-3000:]  # interrupted: scripts must not take it for a complete run
    assert "SUMMARY (interrupted" in out
    assert "not computed: the run was interrupted" in out and "OEE (latest" not in out
    _gone, alive = psutil.wait_procs(descendants, timeout=10)
    assert alive == [], f"processes left running: {alive}"
