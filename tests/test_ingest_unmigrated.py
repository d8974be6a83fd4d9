"""``ingest run`` on a database that was never migrated refuses with one line and exit 4, before it takes a
single message: the broker still holds the worker's queued messages afterwards."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.client import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from psycopg import sql

from datafactory.db.connect import with_database
from datafactory.db.migrate import migration_files
from tests.conftest import PG_SERVER

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def empty_db() -> Iterator[str]:
    name = f"dft_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(with_database(PG_SERVER, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield with_database(PG_SERVER, name)
    with psycopg.connect(with_database(PG_SERVER, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _session(client_id: str, topic: str, got: list[bytes], ready: threading.Event) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 300

    def on_connect(cl: mqtt.Client, *_: object) -> None:
        cl.subscribe(topic, qos=1)
        ready.set()

    c.on_connect = on_connect
    c.on_message = lambda _c, _u, msg: got.append(bytes(msg.payload))
    c.connect("127.0.0.1", 1883, clean_start=False, properties=props)
    c.loop_start()
    assert ready.wait(30), "no CONNACK from the broker in 30 s"
    return c


@pytest.mark.parametrize("extra", [[], ["--processes", "2"]], ids=["one-process", "two-processes"])
def test_ingest_run_on_an_unmigrated_database_exits_4_and_acknowledges_nothing(
    empty_db: str, mqtt_url: str, enterprise: str, extra: list[str]
) -> None:
    worker, topic = f"w{uuid.uuid4().hex[:8]}", f"df/v1/{enterprise}/#"
    got: list[bytes] = []
    first = _session(worker, topic, got, threading.Event())  # the worker's persistent session, subscribed
    first.disconnect()
    first.loop_stop()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", 1883)
    pub.loop_start()
    payload = b'{"fmt":"df-json/2","samples":[["p",1763900000000000,1.5,0]]}'
    pub.publish(f"df/v1/{enterprise}/s/a/l/c/data", payload, qos=1).wait_for_publish(5)
    pub.disconnect()
    pub.loop_stop()

    proc = subprocess.run(
        [sys.executable, "-m", "app", "ingest", "run", "--database-url", empty_db, "--mqtt-url", mqtt_url,
         "--worker", worker, "--topic-filter", topic, *extra],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    needed = migration_files()[-1].stem[:4]
    assert proc.returncode == 4, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert f"schema is at none, this version needs {needed}" in lines[0] and "datafactory db migrate" in lines[0]

    again = _session(worker, topic, got, threading.Event())  # the same session: the message is still queued
    try:
        deadline = threading.Event()
        for _ in range(50):
            if got:
                break
            deadline.wait(0.1)
        assert got == [payload]
    finally:
        again.disconnect()
        again.loop_stop()
