"""The demo tells the truth, tested piece by piece without running the whole plant (tests/test_demo.py does):
simulated time never runs ahead of the wall clock, also on a rerun; the summary shows only OEE this run
computed, marks an incomplete shift, says an interrupted run is interrupted and prints the queries for OEE,
downtime and alerts; a PostgreSQL left running by an earlier run is found and reused, not fought."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from app.cli.demo_summary import OeeRow, RunResult, database_now, latest_oee, print_summary, queries
from app.harness import LocalPostgres
from app.harness.observer import DatabaseSnapshot
from app.harness.pipeline import Pipeline
from app.harness.process import ServiceStartError
from app.harness.selection import Services, resolve_services
from datafactory.db.connect import with_database

NOW = datetime(2026, 12, 2, 18, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[1]


def _pipeline(speed: float = 10, duration: float = 60, not_before: datetime | None = None) -> Pipeline:
    p = Pipeline("postgresql://x@127.0.0.1:1/x", "mqtt://127.0.0.1:1", Path("/nonexistent"), speed,
                 duration_s=duration)
    p.not_before = not_before
    return p


@pytest.mark.parametrize(("speed", "duration"), [(10, 60), (60, 300), (1, 30)])
def test_simulated_time_ends_behind_the_wall_clock(speed: float, duration: float) -> None:
    p = _pipeline(speed, duration)
    start = p.simulated_start(NOW)
    end_of_data = start + timedelta(seconds=duration * speed)
    wall_at_end = NOW + timedelta(seconds=duration)
    assert end_of_data <= NOW < wall_at_end
    assert p.overlap_until is None and p.sim_start == start


def test_a_rerun_overlaps_earlier_data_instead_of_running_into_the_future() -> None:
    earlier_end = NOW - timedelta(seconds=20)  # the previous demo ended a moment ago
    p = _pipeline(not_before=earlier_end)
    start = p.simulated_start(NOW)
    assert start + timedelta(seconds=60 * 10) <= NOW  # it used to start after earlier_end: 10 min in the future
    assert p.overlap_until == earlier_end  # and the demo says so
    old = _pipeline(not_before=NOW - timedelta(days=1))
    old.simulated_start(NOW)
    assert old.overlap_until is None


def _result(**changes: object) -> RunResult:
    snap = DatabaseSnapshot(signals=20, samples=5000, oldest_sample=NOW - timedelta(minutes=10),
                            newest_sample=NOW - timedelta(seconds=30))
    base: dict[str, object] = dict(
        wall_s=70.0, snapshot=snap, published=5000, unique=5000, run_s=60.0, analytics="done", oee=[],
        interrupted=False, crashed={}, earlier_samples=0, sim_start=NOW - timedelta(minutes=10),
        sim_end=NOW - timedelta(seconds=30), wall_end=NOW,
    )
    return RunResult(**(base | changes))  # type: ignore[arg-type]


def _services() -> Services:
    return Services("postgresql://postgres@127.0.0.1:5432/datafactory", "mqtt://127.0.0.1:1883", "local", "local")


def _summary(result: RunResult, capsys: pytest.CaptureFixture[str]) -> str:
    p = _pipeline()
    p.plant = {"enterprise": {"id": "demo-precision"}}
    print_summary(_services(), p, result, keep=False)
    return capsys.readouterr().out


def test_interrupted_summary_has_no_oee_and_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    row = OeeRow("moulding/line-1/imm-01", "day", NOW - timedelta(hours=10), NOW + timedelta(hours=2),
                 0.9, 0.8, 0.99, 0.71)
    out = _summary(_result(interrupted=True, analytics="skipped (interrupted)", oee=[row]), capsys)
    assert out.splitlines()[1].startswith("SUMMARY (interrupted")
    assert "71.0%" not in out and "not computed: the run was interrupted" in out
    assert ("simulated clock     2026-12-02 17:50:00 → 2026-12-02 17:59:30 UTC at 10x (wall clock at the end"
            " 18:00:00 UTC, 30 s behind it); newest sample 17:59:30") in out


def test_a_clock_ahead_of_the_wall_is_said(capsys: pytest.CaptureFixture[str]) -> None:
    out = _summary(_result(sim_end=NOW + timedelta(seconds=90)), capsys)
    assert "(wall clock at the end 18:00:00 UTC; 90 s ahead of it)" in out


def test_the_simulator_clock_is_its_start_plus_run_time_times_speed() -> None:
    p = _pipeline(speed=20)
    p.simulated_start(NOW)
    assert p.sim_start is not None  # simulated_start records where the simulator's clock starts
    p.simulator_started = 100.0
    p.simulator_stopped = 130.0
    assert p.sim_clock() == p.sim_start + timedelta(seconds=600)


def test_incomplete_shift_is_marked_and_complete_one_is_not(capsys: pytest.CaptureFixture[str]) -> None:
    partial = OeeRow("moulding/line-1/imm-01", "day", NOW - timedelta(hours=10), NOW + timedelta(hours=2),
                     0.9, 0.8, 0.99, 0.71)
    whole = OeeRow("moulding/line-1/imm-02", "night", NOW - timedelta(hours=22), NOW - timedelta(hours=10),
                   0.5, 0.5, 1.0, 0.25)
    out = _summary(_result(oee=[partial, whole]), capsys)
    assert "moulding/line-1/imm-01 day*" in out and "moulding/line-1/imm-02 night " in out
    assert "* incomplete shift: 08:00–20:00 UTC, data only to 17:59 UTC" in out
    assert "71.0%" in out and "25.0%" in out


def test_summary_prints_queries_that_run(capsys: pytest.CaptureFixture[str], db_url: str) -> None:
    out = _summary(_result(), capsys)
    for table in ("FROM oee", "FROM downtime", "FROM alerts", "FROM dead_letters"):
        assert table in out
    assert "docs/analytics.md" in out
    with psycopg.connect(db_url) as conn:  # every printed query is valid SQL against the real schema
        for line in queries(db_url, "demo-precision"):
            conn.execute(line.split(" -c ", 1)[1].strip('"'))


def test_only_oee_this_run_computed_is_shown(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        plant = conn.execute("INSERT INTO plants (enterprise, site) VALUES ('acme', 'dg-1') RETURNING id").fetchone()
        assert plant is not None
        cell = conn.execute(
            "INSERT INTO cells (plant_id, area, line, cell) VALUES (%s, 'a', 'l', 'c') RETURNING id", (plant[0],)
        ).fetchone()
        assert cell is not None
        columns = ("plant_id, cell_id, period, time, time_end, shift_name, calendar_s, planned_down_s, pbt_s, apt_s,"
                   " adet_s, asut_s, adot_s, unknown_s, microstop_s, microstop_count, stop_count, changeover_count,"
                   " total_count, good_count, reject_count, ideal_production_s, oee, computed_at")
        conn.execute(
            f"INSERT INTO oee ({columns}) VALUES (%s, %s, 'shift', %s, %s, 'day', 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0,"
            " 1, 1, 0, 1, 0.42, now() - interval '1 hour')",
            (plant[0], cell[0], NOW - timedelta(hours=10), NOW + timedelta(hours=2)),
        )
    began = database_now(db_url)
    assert began is not None
    assert latest_oee(db_url, "acme", began) == []  # an earlier run's figure is not this run's
    earlier = latest_oee(db_url, "acme", began - timedelta(hours=2))
    assert [(r.cell, r.shift, r.oee) for r in earlier] == [("a/l/c", "day", 0.42)]
    assert latest_oee(db_url, "other", began - timedelta(hours=2)) == []


@pytest.mark.integration
def test_a_postgres_left_running_is_reused_and_left_running(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with LocalPostgres(state / "pg") as leftover:  # what `demo --keep-services` leaves behind
        services = resolve_services(state, embedded=True)
        try:
            assert f"127.0.0.1:{leftover.port}/" in services.database_url
            assert services.database_origin == f"embedded, left running (pid {leftover.pid})"
            assert not any(isinstance(s, LocalPostgres) for s in services.owned)
        finally:
            services.stop()
        with psycopg.connect(with_database(leftover.url, "postgres"), connect_timeout=5) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)  # still running: it was not ours to stop


@pytest.fixture(params=["nothing listens", "accepts and never answers"])
def dead_port(request: pytest.FixtureRequest) -> Iterator[int]:
    """A loopback port where no PostgreSQL answers: closed, or held by a listener that accepts and stays silent
    (a hung server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = int(listener.getsockname()[1])
    if request.param == "nothing listens":
        listener.close()
    yield port
    listener.close()


def test_a_leftover_that_does_not_answer_is_named_in_one_line_and_exits_3(tmp_path: Path, dead_port: int) -> None:
    """A live process holds the cluster (its postmaster.pid) but no PostgreSQL answers on its port: say which and
    how to stop it, rather than start a second server on the same data, bury PostgreSQL's own complaint, or wait
    out a connect timeout; the demo exits 3, a service that cannot be reached or started (README)."""
    state = tmp_path / "state"
    (state / "pg").mkdir(parents=True)
    (state / "pg" / "postmaster.pid").write_text(f"{os.getpid()}\n{state / 'pg'}\n0\n{dead_port}\n")
    with pytest.raises(ServiceStartError) as exc:
        resolve_services(state, embedded=True)
    message = str(exc.value)
    assert "\n" not in message
    assert f"pid {os.getpid()}" in message and f"127.0.0.1:{dead_port}" in message and f"kill {os.getpid()}" in message

    argv = [sys.executable, "-m", "app", "demo", "--embedded", "--state-dir", str(state), "--duration", "1"]
    run = subprocess.run(argv, check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert run.returncode == 3, run.stderr
    assert errors == [f"error: {message}"], run.stderr
    assert "Traceback" not in run.stderr and "==> db migrate" not in run.stderr
