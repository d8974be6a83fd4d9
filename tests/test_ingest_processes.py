"""``ingest run --processes N``: N real worker processes in one share group on the real Mosquitto and PostgreSQL,
supervised as one service — lossless together, stopped together, and one exit code for any of them failing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from app.harness import EmbeddedBroker
from tests.support.ingest_process import ROOT, IngestProcess
from tests.test_ingest_support import (
    Publisher,
    cell,
    count,
    expected,
    make_samples,
    publish_meta,
    publish_samples,
    stored_samples,
    wait_until,
)

pytestmark = pytest.mark.integration


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def _health(db_url: str) -> dict[str, int]:
    with psycopg.connect(db_url) as conn:
        return {w: int(n) for w, n in conn.execute("SELECT worker, samples_total FROM ingest_health")}


def _start(db_url: str, mqtt_url: str, enterprise: str, *extra: str) -> tuple[IngestProcess, list[int]]:
    proc = IngestProcess(db_url, mqtt_url, enterprise, "--processes", "2", *extra)
    names = {f"w-{enterprise}-1", f"w-{enterprise}-2"}
    wait_until(lambda: set(_health(db_url)) == names, 60, "both worker processes up")
    kids = _children(proc.pid)
    assert len(kids) == 2, kids
    return proc, kids


def test_two_processes_store_everything_once_and_stop_together(db_url: str, mqtt_url: str, enterprise: str) -> None:
    path = cell(enterprise)
    names = ["power", "speed"]
    samples = make_samples(names, 2000)  # 4000 samples in 200 messages, spread over both processes
    proc, kids = _start(db_url, mqtt_url, enterprise)
    pub = Publisher(mqtt_url)
    try:
        publish_meta(pub, path, names)
        pub.flush()
        # Meta reaches every process (a direct subscription beside the shared one): registered once, from meta.
        meta_sql = "SELECT count(*) FROM signals WHERE registered_by = 'meta'"
        wait_until(lambda: count(db_url, meta_sql) == 2, what="signals registered from meta")
        publish_samples(pub, path, samples, per_message=20)
        pub.flush()
        wait_until(lambda: sum(_health(db_url).values()) >= len(samples), 60, "every sample counted in health")
    finally:
        pub.close()
        code, log = proc.terminate(60)
    assert code == 0, log
    assert stored_samples(db_url) == expected(samples)  # each sample once, exactly as sent
    shares = _health(db_url)
    assert sum(shares.values()) == len(samples) and min(shares.values()) > 0, shares  # both took a share
    assert not any(_alive(k) for k in kids), "SIGTERM to the service stops every worker process"
    assert "Traceback" not in log


def test_a_process_that_dies_stops_the_service_with_one_line(db_url: str, mqtt_url: str, enterprise: str) -> None:
    proc, kids = _start(db_url, mqtt_url, enterprise)
    os.kill(kids[1], signal.SIGKILL)
    code, log = proc.wait_exit(60)
    assert code == 1, log
    errors = [line for line in log.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: ingest process w-{enterprise}-2 was killed by signal 9; the other 1 were stopped, nothing unstored"
        " was acknowledged: restart the service"
    ], log
    assert not _alive(kids[0]), "the surviving process is stopped with the service"
    assert "Traceback" not in log


def test_worker_processes_stop_by_themselves_when_the_service_is_killed(
    db_url: str, mqtt_url: str, enterprise: str
) -> None:
    proc, kids = _start(db_url, mqtt_url, enterprise)
    proc.kill()  # SIGKILL: the supervisor cannot stop its children itself
    deadline = time.monotonic() + 30
    while any(_alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(k) for k in kids), "orphaned worker processes kept running"


def _run(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "app", "ingest", "run", "--processes", "2", *args]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)


def test_processes_refuse_mqtt_3_1_1_with_one_line(db_url: str, mqtt_url: str) -> None:
    proc = _run("--database-url", db_url, "--mqtt-url", mqtt_url, "--mqtt-protocol", "3.1.1")
    assert proc.returncode == 2, proc.stderr
    assert "needs MQTT 5 shared subscriptions" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_processes_refuse_a_broker_without_mqtt_5(tmp_path: Path, db_url: str) -> None:
    with EmbeddedBroker(data_dir=tmp_path / "amqtt") as broker:  # amqtt speaks MQTT 3.1.1 only
        proc = _run("--database-url", db_url, "--mqtt-url", broker.url)
    assert proc.returncode == 2, proc.stderr
    assert "the broker does not speak MQTT 5" in proc.stderr and "--processes 1" in proc.stderr


def test_an_unreachable_broker_ends_the_service_with_the_workers_exit_code(db_url: str) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = _run("--database-url", db_url, "--mqtt-url", f"mqtt://127.0.0.1:{port}")
    assert proc.returncode == 3, proc.stderr  # the workers' own code: a service that cannot be reached
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert any("cannot reach" in e for e in errors), proc.stderr  # a worker's cause
    assert any(e.startswith("error: ingest process ") and "exited with code 3" in e for e in errors), proc.stderr
    assert "Traceback" not in proc.stderr
