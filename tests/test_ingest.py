"""Ingest end to end against the real Mosquitto and PostgreSQL: exact storage, idempotency, registration."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import psycopg
import pytest
import yaml

from datafactory.contract.payload import encode_config
from datafactory.contract.sample import Sample, datetime_to_us, now_us, us_to_datetime
from datafactory.contract.topics import TopicKind, gateway_topic
from tests.test_ingest_support import (
    Publisher,
    cell,
    count,
    expected,
    make_samples,
    publish_meta,
    publish_samples,
    start_worker,
    stored_samples,
    wait_until,
    worker_options,
)

pytestmark = pytest.mark.integration


def test_published_batches_are_stored_exactly(db_url: str, mqtt_url: str, enterprise: str) -> None:
    path = cell(enterprise)
    names = ["power", "speed", "temp"]
    samples = make_samples(names, 500)
    worker = start_worker(db_url, mqtt_url, enterprise)
    pub = Publisher(mqtt_url)
    try:
        publish_meta(pub, path, names)
        publish_samples(pub, path, samples)
        pub.flush()
        wait_until(lambda: worker.stats.samples_total >= len(samples), what="all samples stored")
    finally:
        pub.close()
        worker.stop(end_session=True)
    assert stored_samples(db_url) == expected(samples)
    assert count(db_url, "SELECT count(*) FROM signals WHERE registered_by = 'meta'") == 3
    assert count(db_url, "SELECT count(*) FROM dead_letters") == 0


def test_same_batch_twice_stores_no_duplicates(db_url: str, mqtt_url: str, enterprise: str) -> None:
    path = cell(enterprise)
    samples = make_samples(["power", "speed"], 300)
    # Margin 0: every re-sent sample is older than its signal's newest, so only the duplicate filter keeps
    # them out of late_writes.
    worker = start_worker(db_url, mqtt_url, enterprise, late_margin_s=0.0)
    pub = Publisher(mqtt_url)
    try:
        publish_samples(pub, path, samples)
        pub.flush()
        wait_until(lambda: worker.stats.samples_total >= len(samples))
        publish_samples(pub, path, samples)  # re-sent: every row is a duplicate
        publish_samples(pub, path, samples[:50] + make_samples(["power"], 5, start_us=samples[-1].time_us + 10))
        pub.flush()
        wait_until(lambda: worker.stats.duplicates_total >= len(samples) + 50, what="duplicates seen")
        wait_until(lambda: worker.stats.samples_total >= len(samples) + 5)
    finally:
        pub.close()
        worker.stop(end_session=True)
    extra = make_samples(["power"], 5, start_us=samples[-1].time_us + 10)
    assert stored_samples(db_url) == expected(samples + extra)
    assert worker.stats.samples_total == len(samples) + 5
    # Re-sent rows were stored before: they are not late writes.
    assert count(db_url, "SELECT count(*) FROM late_writes") == 0


def test_late_samples_are_stored_and_recorded(db_url: str, mqtt_url: str, enterprise: str) -> None:
    path = cell(enterprise)
    t0 = now_us() - 3_600_000_000
    recent = make_samples(["power"], 100, start_us=t0 + 600_000_000)
    late = make_samples(["power"], 20, start_us=t0, step_us=1_000_000)
    slightly_out_of_order = [Sample("power", recent[-1].time_us - 500_000, 9.0, 0)]  # within the 1 s margin
    worker = start_worker(db_url, mqtt_url, enterprise, late_margin_s=1.0)
    pub = Publisher(mqtt_url)
    try:
        publish_samples(pub, path, recent)
        pub.flush()
        wait_until(lambda: worker.stats.samples_total >= 100)
        publish_samples(pub, path, late + slightly_out_of_order)
        pub.flush()
        wait_until(lambda: worker.stats.samples_total >= 121)
    finally:
        pub.close()
        worker.stop(end_session=True)
    # A new worker seeds its high-water marks from the database: a late sample is still recognised.
    worker = start_worker(db_url, mqtt_url, enterprise, late_margin_s=1.0)
    pub = Publisher(mqtt_url)
    very_late = [Sample("power", t0 - 5_000_000, 1.0, 0)]
    try:
        publish_samples(pub, path, very_late)
        pub.flush()
        wait_until(lambda: worker.stats.samples_total >= 1)
    finally:
        pub.close()
        worker.stop(end_session=True)
    assert stored_samples(db_url) == expected(recent + late + slightly_out_of_order + very_late)
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT time_from, time_to, samples FROM late_writes ORDER BY id").fetchall()
    assert [(datetime_to_us(a), datetime_to_us(b), n) for a, b, n in rows] == [
        (late[0].time_us, late[-1].time_us, 20),
        (very_late[0].time_us, very_late[0].time_us, 1),
    ]


def test_health_status_and_config_are_recorded(db_url: str, mqtt_url: str, enterprise: str) -> None:
    path = cell(enterprise)
    doc = yaml.safe_load((Path(__file__).parents[1] / "edge_configs" / "demo-plant.yaml").read_text())
    doc["enterprise"]["id"] = enterprise
    doc["enterprise"]["timezone"] = "Europe/Berlin"
    doc["site"]["id"] = "site-1"
    samples = make_samples(["power"], 2000)
    worker = start_worker(db_url, mqtt_url, enterprise)
    pub = Publisher(mqtt_url)
    try:
        pub.publish(
            gateway_topic(enterprise, "site-1", "gw-1", TopicKind.STATUS),
            orjson.dumps({"online": True, "config_version": "abc123"}),
            retain=True,
        )
        pub.publish(
            gateway_topic(enterprise, "site-1", "gw-1", TopicKind.CONFIG),
            encode_config(doc, version="abc123"),
            retain=True,
        )
        publish_samples(pub, path, samples, per_message=10)
        pub.flush()
        wait_until(lambda: worker.stats.samples_total >= len(samples))
        wait_until(
            lambda: count(db_url, "SELECT coalesce(max(samples_total), 0) FROM ingest_health") >= len(samples),
            what="health row refreshed",
        )
        stats = worker.stats
    finally:
        pub.close()
        worker.stop(end_session=True)
    with psycopg.connect(db_url) as conn:
        health = conn.execute("SELECT worker, messages_total, lag_s, batch_latency_ms FROM ingest_health").fetchone()
        status = conn.execute("SELECT gateway, online, config_version FROM gateway_status").fetchall()
        configs = conn.execute("SELECT gateway, version, config->'enterprise'->>'id' FROM plant_configs").fetchall()
        plant = conn.execute("SELECT timezone, enterprise_info->>'credit_code' FROM plants").fetchall()
    assert health is not None and health[0] == f"w-{enterprise}" and health[1] >= 200
    assert health[2] is not None and 500 < health[2] < 3600  # newest sample is ~10 minutes old
    assert health[3] is not None and health[3] > 0
    assert status == [("gw-1", True, "abc123")]
    assert configs == [("gw-1", "abc123", enterprise)]
    assert plant == [("Europe/Berlin", doc["enterprise"]["credit_code"])]
    # Receive Maximum lets far more than Mosquitto's default 20 unacknowledged messages into one batch.
    assert stats.max_batch_messages > 20


@pytest.mark.plain_postgres
def test_partitions_are_created_for_the_days_written(db_url: str, mqtt_url: str, enterprise: str) -> None:
    path = cell(enterprise)
    day_us = 86_400_000_000
    old_day = (now_us() // day_us - 20) * day_us
    samples = make_samples(["power"], 50, start_us=old_day + 3_600_000_000) + make_samples(["power"], 5)
    worker = start_worker(db_url, mqtt_url, enterprise)
    pub = Publisher(mqtt_url)
    try:
        publish_samples(pub, path, samples, per_message=55)
        pub.flush()
        wait_until(lambda: worker.stats.samples_total >= len(samples))
    finally:
        pub.close()
        worker.stop(end_session=True)
    name = f"samples_p{us_to_datetime(old_day):%Y%m%d}"
    assert count(db_url, "SELECT count(*) FROM pg_class WHERE relname = %s", (name,)) == 1
    assert count(db_url, f"SELECT count(*) FROM {name}") == 50
    assert count(db_url, "SELECT count(*) FROM samples_default") == 0
    assert stored_samples(db_url) == expected(samples)


def test_two_workers_share_the_load_without_loss(db_url: str, mqtt_url: str, enterprise: str) -> None:
    group = f"g{enterprise}"
    workers = [
        start_worker(db_url, mqtt_url, enterprise, worker=f"w{i}-{enterprise}", share_group=group) for i in range(2)
    ]
    pub = Publisher(mqtt_url)
    samples = make_samples(["power", "speed"], 2000)
    try:
        publish_meta(pub, cell(enterprise), ["power", "speed"])
        pub.flush()
        # Meta goes to one worker of the share group, data to both: without this wait, data can reach the other
        # worker first under load and register the signals from data (correct, but not what this test checks).
        meta_sql = "SELECT count(*) FROM signals WHERE registered_by = 'meta'"
        wait_until(lambda: count(db_url, meta_sql) == 2, what="signals registered from meta")
        publish_samples(pub, cell(enterprise), samples, per_message=20)
        pub.flush()
        wait_until(lambda: sum(w.stats.samples_total for w in workers) >= len(samples))
    finally:
        pub.close()
        for w in workers:
            w.stop(end_session=True)
    assert stored_samples(db_url) == expected(samples)
    assert all(w.stats.samples_total > 0 for w in workers), [w.stats.samples_total for w in workers]
    assert count(db_url, "SELECT count(*) FROM signals WHERE registered_by = 'meta'") == 2


def test_writer_lanes_store_side_by_side_and_register_signals_once(db_url: str, mqtt_url: str, enterprise: str) -> None:
    """Three writer lanes with small batches: every lane holds a connection, signals first seen in data are
    auto-registered once even when lanes meet them at the same time, and every sample is stored exactly once."""
    paths = [cell(enterprise, f"press-{c}") for c in range(4)]
    names = [f"s{k}" for k in range(20)]
    samples = make_samples(names, 150)
    lanes_sql = f"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'df-ingest-w-{enterprise}'"
    worker = start_worker(db_url, mqtt_url, enterprise, writers=3, batch_samples=300)
    pub = Publisher(mqtt_url)
    try:
        wait_until(lambda: count(db_url, lanes_sql) == 3, what="three writer connections")
        for path in paths:  # no meta: every signal is registered from data
            publish_samples(pub, path, samples)
        pub.flush()
        wait_until(lambda: worker.stats.samples_total >= len(paths) * len(samples), what="all samples stored")
    finally:
        pub.close()
        worker.stop(end_session=True)
    assert worker.stats.batches_total >= 10
    assert count(db_url, "SELECT count(*) FROM samples") == len(paths) * len(samples)
    assert count(db_url, "SELECT count(*) FROM signals WHERE registered_by = 'auto'") == len(paths) * len(names)
    assert (
        count(db_url, "SELECT count(*) FROM (SELECT signal_id, time FROM samples GROUP BY 1, 2 HAVING count(*) > 1) d")
        == 0
    )
    assert count(db_url, "SELECT count(*) FROM dead_letters") == 0


def test_a_deadlock_rolls_back_and_retries_without_reconnecting(db_url: str, mqtt_url: str, enterprise: str) -> None:
    """A real deadlock between two transactions: the lane whose batch the database rolled back keeps its
    connection and does not count the attempt towards isolating the batch (its content is not at fault)."""
    import threading

    from ingest.worker import IngestWorker

    worker = IngestWorker(worker_options(db_url, mqtt_url, enterprise))  # not started: one lane is driven by hand
    lane = worker._lanes[0]
    ours = lane._connection()
    assert ours is not None
    with psycopg.connect(db_url, autocommit=True) as setup:
        setup.execute("CREATE TABLE IF NOT EXISTS deadlock_probe (id int PRIMARY KEY)")
        setup.execute("INSERT INTO deadlock_probe VALUES (1), (2) ON CONFLICT DO NOTHING")
    with psycopg.connect(db_url) as other:
        # The session whose deadlock_timeout expires first finds the deadlock and is the one rolled back: ours.
        ours.execute("SET deadlock_timeout = '100ms'")
        other.execute("SET deadlock_timeout = '10s'")
        ours.execute("UPDATE deadlock_probe SET id = id WHERE id = 1")
        other.execute("UPDATE deadlock_probe SET id = id WHERE id = 2")
        errors: list[Exception] = []

        def cross(conn: psycopg.Connection, row: int) -> None:
            try:
                conn.execute("UPDATE deadlock_probe SET id = id WHERE id = %s", (row,))
            except psycopg.Error as err:
                errors.append(err)
                conn.rollback()

        thread = threading.Thread(target=cross, args=(other, 1))
        thread.start()
        time.sleep(0.3)  # the other session waits for our row 1
        with pytest.raises(psycopg.errors.DeadlockDetected) as info:
            ours.execute("UPDATE deadlock_probe SET id = id WHERE id = 2")
        lane._failed(ours, info.value)
        thread.join(10)
        other.rollback()
    assert lane._conn is ours and not ours.closed, "a deadlock must not cost the connection"
    assert lane._failures == 0, "a deadlock must not count towards isolating the batch"
    assert ours.execute("SELECT 1").fetchone() == (1,)
    assert worker.stats.database_failures == 1 and not errors
    ours.close()
