"""Ingest end to end against the real Mosquitto and PostgreSQL: exact storage, idempotency, registration."""

from __future__ import annotations

import pytest

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
