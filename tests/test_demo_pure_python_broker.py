"""The fallback without Mosquitto: ingest and the whole demo on the embedded pure-Python (amqtt, MQTT 3.1.1) broker."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from app.harness import EmbeddedBroker, LocalPostgres
from app.harness.selection import DEMO_DATABASE
from datafactory.db.connect import with_database
from datafactory.errors import ConfigError, ConnectionLost
from ingest import IngestOptions, IngestWorker
from tests.test_demo import _demo, _field, _finish, _stored_in_db
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
    worker_options,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_ingest_on_the_embedded_broker_stores_exactly_what_was_published(
    tmp_path: Path, db_url: str, enterprise: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = cell(enterprise)
    names = ["power", "speed"]
    samples = make_samples(names, 400)
    with EmbeddedBroker(data_dir=tmp_path / "amqtt") as broker:
        caplog.set_level(logging.WARNING, logger="ingest.mqtt_intake")
        worker = IngestWorker(worker_options(db_url, broker.url, enterprise))
        worker.start()
        pub = Publisher(broker.url, protocol=mqtt.MQTTv311)  # as gateways on an amqtt broker
        try:
            assert worker._intake.protocol == mqtt.MQTTv311  # "auto" fell back after the broker refused MQTT 5
            publish_meta(pub, path, names)
            publish_samples(pub, path, samples)
            pub.flush()
            wait_until(lambda: worker.stats.samples_total >= len(samples), what="all samples stored")
        finally:
            pub.close()
            worker.stop(end_session=True)
    assert stored_samples(db_url) == expected(samples)
    assert count(db_url, "SELECT count(*) FROM dead_letters") == 0
    warnings = [r.getMessage() for r in caplog.records if "MQTT 3.1.1" in r.getMessage()]
    assert len(warnings) == 1, warnings  # said once, naming the broker
    assert broker.url in warnings[0] and "receive maximum" in warnings[0]


def test_mqtt_protocol_5_refuses_the_embedded_broker_instead_of_weakening(
    tmp_path: Path, db_url: str, enterprise: str
) -> None:
    with EmbeddedBroker(data_dir=tmp_path / "amqtt") as broker:
        worker = IngestWorker(worker_options(db_url, broker.url, enterprise, mqtt_protocol="5"))
        with pytest.raises(ConnectionLost, match="does not speak MQTT 5"):
            worker.start(timeout_s=10)


def _path_without_mosquitto(tmp_path: Path) -> str:
    """PATH minus every directory holding a mosquitto binary; what stays must still run the demo."""
    mosquitto_dirs = {str(Path(p).resolve().parent) for p in _all_on_path("mosquitto")}
    directories = os.environ.get("PATH", "").split(os.pathsep)
    kept = [d for d in directories if d and str(Path(d).resolve()) not in mosquitto_dirs]
    path = os.pathsep.join(kept)
    assert shutil.which("mosquitto", path=path) is None
    return path


def _all_on_path(name: str) -> list[str]:
    found = []
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory or ".") / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            found.append(str(candidate))
    return found


def test_demo_embedded_without_mosquitto_uses_the_pure_python_broker(tmp_path: Path) -> None:
    proc = _demo(
        tmp_path, "--embedded", "--duration", "12", "--speed", "30", "--no-analytics", "--enterprise", "demo-amqtt",
        env={"PATH": _path_without_mosquitto(tmp_path)},
    )  # fmt: skip
    out, err = _finish(proc, timeout=120)
    assert proc.returncode == 0, f"{out}\n{err[-3000:]}"
    assert "embedded pure-Python broker" in err, err[-3000:]
    assert "embedded amqtt" in err  # the broker line names it: no Mosquitto was started
    assert "UNAVAILABLE" not in out and "FAILED" not in out, out
    stored = _field(out, "samples stored")
    assert stored > 0
    assert _field(out, "dead letters") == 0
    with LocalPostgres(tmp_path / "state" / "pg") as pg:
        count_, signals = _stored_in_db(with_database(pg.url, DEMO_DATABASE), "demo-amqtt")
    assert count_ == stored
    assert signals > 10  # machines over OPC-UA through the gateway, and the simulator's MQTT meter


def test_mqtt_protocol_option_is_checked() -> None:
    with pytest.raises(ConfigError, match="mqtt_protocol"):
        IngestOptions(mqtt_protocol="3")
    assert IngestOptions().mqtt_protocol == "auto"
