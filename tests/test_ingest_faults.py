"""Fault injection: the worker SIGKILLed mid-stream, PostgreSQL restarted mid-stream, PostgreSQL down for a while.
In every case exactly the published samples end up stored — none lost, none duplicated — and memory stays
bounded while the database is away. Each test that stops a service runs its own instance."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from app.harness.broker import MosquittoBroker
from app.harness.postgres import LocalPostgres
from datafactory.contract.sample import Sample
from datafactory.db.connect import with_database
from datafactory.db.migrate import migrate
from tests.support.ingest_process import IngestProcess
from tests.test_ingest_support import (
    Publisher,
    cell,
    count,
    expected,
    make_samples,
    publish_samples,
    start_worker,
    stored_samples,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Stream:
    """Publishes ``samples`` in messages of ``per_message`` at about ``rate`` messages/s from a thread."""

    def __init__(self, mqtt_url: str, topic_cell: str, samples: list[Sample], per_message: int, rate: float) -> None:
        self.pub = Publisher(mqtt_url)
        self.samples, self.per_message, self.rate = samples, per_message, rate
        self.path = cell(topic_cell)
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.monotonic()
        chunks = [self.samples[i : i + self.per_message] for i in range(0, len(self.samples), self.per_message)]
        for i, chunk in enumerate(chunks):
            delay = start + i / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            publish_samples(self.pub, self.path, chunk, per_message=self.per_message)
            self.sent += len(chunk)
        self.pub.flush(120)

    def __enter__(self) -> Stream:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(180)
        self.pub.close()


def test_worker_killed_mid_stream_loses_and_duplicates_nothing(db_url: str, mqtt_url: str, enterprise: str) -> None:
    samples = make_samples(["power", "speed"], 3000)  # 6000 samples in 300 messages over ~6 s
    proc = IngestProcess(db_url, mqtt_url, enterprise, verbose=True)
    try:
        wait_until(lambda: count(db_url, "SELECT count(*) FROM ingest_health") == 1, 30, "worker up")
        with Stream(mqtt_url, enterprise, samples, per_message=20, rate=50) as stream:
            wait_until(lambda: count(db_url, "SELECT count(*) FROM samples") >= 600, 30, "some samples stored")
            proc.kill()
            at_kill = count(db_url, "SELECT count(*) FROM samples")
            assert stream.sent < len(samples), "the kill must happen mid-stream"
            proc = IngestProcess(db_url, mqtt_url, enterprise, verbose=True)
        wait_until(lambda: count(db_url, "SELECT count(*) FROM samples") >= len(samples), 60, "all samples stored")
        time.sleep(1.0)  # anything redelivered late would show up as an extra row
    finally:
        proc.terminate(30)
    assert 0 < at_kill < len(samples)
    assert stored_samples(db_url) == expected(samples)


@pytest.fixture(scope="module")
def private_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPostgres]:
    pg = LocalPostgres(tmp_path_factory.mktemp("ingest-pg") / "pg", fsync=False)
    pg.start()
    yield pg
    pg.stop()


def test_postgres_restarted_mid_stream(private_pg: LocalPostgres, mqtt_url: str, enterprise: str) -> None:
    url = with_database(private_pg.url, f"restart_{enterprise}")
    migrate(url)
    samples = make_samples(["power", "speed"], 3000)
    worker = start_worker(url, mqtt_url, enterprise)
    try:
        with Stream(mqtt_url, enterprise, samples, per_message=20, rate=60):
            wait_until(lambda: worker.stats.samples_total >= 600, 30, "some samples stored")
            private_pg.stop()
            time.sleep(2.0)
            private_pg.start()
        wait_until(lambda: worker.stats.samples_total >= len(samples), 90, "all samples stored")
        time.sleep(1.0)
        failures = worker.stats.database_failures
    finally:
        worker.stop(end_session=True)
    assert failures > 0, "the worker should have seen the database go away"
    assert stored_samples(url) == expected(samples)


def test_memory_bounded_while_postgres_is_down(private_pg: LocalPostgres, tmp_path: Path, enterprise: str) -> None:
    url = with_database(private_pg.url, f"down_{enterprise}")
    migrate(url)
    # A private broker that queues without limit, so the backlog waits there, not in the worker.
    with MosquittoBroker(data_dir=tmp_path / "mq", extra_config="max_queued_messages 0\n") as broker:
        samples = make_samples([f"s{i}" for i in range(100)], 600, step_us=10_000)  # 60,000 samples
        private_pg.stop()
        down_at = time.monotonic()
        proc = IngestProcess(url, broker.url, enterprise, "--receive-maximum", "500", verbose=True)
        try:
            proc.wait_running()
            assert proc.poll() is None
            rss: list[int] = []
            with Stream(broker.url, enterprise, samples, per_message=100, rate=20) as stream:  # 600 messages, ~30 s
                while stream.thread.is_alive() or time.monotonic() - down_at < 30:
                    rss.append(psutil.Process(proc.pid).memory_info().rss)
                    time.sleep(0.5)
            assert proc.poll() is None, "the worker must survive the database outage"
            down_s = time.monotonic() - down_at
            private_pg.start()
            try:
                wait_until(lambda: _safe_count(url) >= len(samples), 90, "backlog stored after the database returned")
            except AssertionError as err:
                proc.terminate(30)
                log = proc.log()[-3000:]
                raise AssertionError(f"stored {_safe_count(url)}; worker log:\n{log}") from err
            time.sleep(1.0)
        finally:
            proc.terminate(30)
            if not private_pg.is_running():
                private_pg.start()
    assert down_s >= 30, f"the database was down for only {down_s:.0f} s"
    peak_mb = max(rss) / 2**20
    # 500 in-flight messages of 100 samples are ~5 MB of payload; the interpreter and libraries ~80 MB.
    assert peak_mb < 250, f"worker RSS peaked at {peak_mb:.0f} MB while the database was down"
    assert max(rss[len(rss) // 2 :]) - max(rss[: len(rss) // 2]) < 40 * 2**20, "RSS kept growing"
    assert stored_samples(url) == expected(samples)


def _safe_count(url: str) -> int:
    try:
        return count(url, "SELECT count(*) FROM samples")
    except Exception:
        return 0
