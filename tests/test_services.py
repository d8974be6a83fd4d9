"""The private services (app.harness) start, serve real clients, stop, restart and die like real ones."""

from __future__ import annotations

import queue
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from app.harness import (
    EmbeddedBroker,
    LocalPostgres,
    MosquittoBroker,
    ServiceStartError,
    free_port,
    start_default_broker,
)
from app.harness.process import port_accepts

pytestmark = pytest.mark.integration


def _client(port: int, client_id: str, *, protocol: mqtt.MQTTProtocolVersion, clean: bool = True) -> mqtt.Client:
    clean_session = None if protocol == mqtt.MQTTv5 else clean  # MQTT 5 has clean_start on connect instead
    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol, clean_session=clean_session)


def _subscriber(port: int, topic: str, *, protocol: mqtt.MQTTProtocolVersion, client_id: str, clean: bool = True):
    received: queue.Queue[tuple[str, bytes, int]] = queue.Queue()
    client = _client(port, client_id, protocol=protocol, clean=clean)
    client.on_message = lambda _c, _u, msg: received.put((msg.topic, bytes(msg.payload), msg.qos))
    subscribed: queue.Queue[bool] = queue.Queue()
    client.on_subscribe = lambda *_args: subscribed.put(True)
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.subscribe(topic, qos=1)
    subscribed.get(timeout=10)
    return client, received


def _publish_qos1(port: int, topic: str, payload: bytes, *, protocol: mqtt.MQTTProtocolVersion) -> None:
    client = _client(port, f"pub-{uuid.uuid4().hex[:8]}", protocol=protocol)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        info = client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=10)
        assert info.is_published(), "the broker did not acknowledge the QoS 1 publish (PUBACK)"
    finally:
        client.disconnect()
        client.loop_stop()


def _connect_persistent(client: mqtt.Client, port: int, protocol: mqtt.MQTTProtocolVersion) -> None:
    """Connect keeping the session: clean_session=False (3.1.1) or clean_start=False + session expiry (5).

    Mosquitto 2.0.11 writes a v5 session to its persistence file only if the client's CONNECT had
    clean_start=False; paho's default (clean start on the first connect) would lose the session on a restart.
    """
    if protocol == mqtt.MQTTv5:
        props = mqtt.Properties(mqtt.PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        client.connect("127.0.0.1", port, clean_start=False, properties=props)
    else:
        client.connect("127.0.0.1", port)


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5], ids=["v311", "v5"])
def test_mosquitto_qos1_roundtrip_and_restart_keeps_queued_messages(tmp_path: Path, protocol) -> None:
    topic = f"df/v1/t{uuid.uuid4().hex[:8]}/s/a/l/c/data"
    sub_id = f"sub-{uuid.uuid4().hex[:8]}"
    with MosquittoBroker(data_dir=tmp_path / "mq") as broker:
        assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
        received: queue.Queue[tuple[str, bytes, int]] = queue.Queue()
        subscribed: queue.Queue[bool] = queue.Queue()
        sub = _client(broker.port, sub_id, protocol=protocol, clean=False)
        sub.on_message = lambda _c, _u, msg: received.put((msg.topic, bytes(msg.payload), msg.qos))
        sub.on_subscribe = lambda *_args: subscribed.put(True)
        _connect_persistent(sub, broker.port, protocol)
        sub.loop_start()
        sub.subscribe(topic, qos=1)
        subscribed.get(timeout=10)
        _publish_qos1(broker.port, topic, b"live", protocol=protocol)
        assert received.get(timeout=10) == (topic, b"live", 1)

        # The subscriber goes away with a persistent session; a message is queued for it; the broker restarts.
        sub.disconnect()
        sub.loop_stop()
        _publish_qos1(broker.port, topic, b"queued", protocol=protocol)
        old_pid = broker.pid
        broker.restart()
        assert broker.pid != old_pid

        again = _client(broker.port, sub_id, protocol=protocol, clean=False)
        again.on_message = lambda _c, _u, msg: received.put((msg.topic, bytes(msg.payload), msg.qos))
        _connect_persistent(again, broker.port, protocol)
        again.loop_start()
        try:
            assert received.get(timeout=10) == (topic, b"queued", 1)
        finally:
            again.disconnect()
            again.loop_stop()
    assert not port_accepts(broker.port)


def test_mosquitto_kill_and_restart_on_same_port(tmp_path: Path) -> None:
    port = free_port()
    broker = MosquittoBroker(port=port, data_dir=tmp_path / "mq", persistence=False)
    broker.start()
    try:
        broker.kill()
        assert not broker.is_running()
        assert not port_accepts(port)
        broker.start()
        assert broker.port == port
        topic = f"t/{uuid.uuid4().hex}"
        sub, received = _subscriber(port, topic, protocol=mqtt.MQTTv311, client_id=f"s-{uuid.uuid4().hex[:6]}")
        _publish_qos1(port, topic, b"x", protocol=mqtt.MQTTv311)
        assert received.get(timeout=10)[1] == b"x"
        sub.disconnect()
        sub.loop_stop()
    finally:
        broker.stop()


def test_mosquitto_extra_config_is_applied(tmp_path: Path) -> None:
    with MosquittoBroker(data_dir=tmp_path / "mq", extra_config="allow_anonymous false\n") as broker:
        client = _client(broker.port, "anon", protocol=mqtt.MQTTv311)
        # Anonymous clients are refused: CONNACK "not authorised" (paho raises or returns a non-zero code).
        codes: queue.Queue[int] = queue.Queue()
        client.on_connect = lambda _c, _u, _f, rc, _p: codes.put(int(rc.value))
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        try:
            assert codes.get(timeout=10) != 0
        finally:
            client.loop_stop()
    text = (tmp_path / "mq" / "mosquitto.conf").read_text()
    assert "allow_anonymous true" not in text


def test_missing_mosquitto_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServiceStartError, match="mosquitto is not installed"):
        MosquittoBroker(data_dir=tmp_path / "mq").start()


def test_embedded_broker_qos1_v311_and_refuses_v5(tmp_path: Path) -> None:
    with EmbeddedBroker(data_dir=tmp_path / "amqtt") as broker:
        assert broker.is_running()
        topic = f"df/v1/t{uuid.uuid4().hex[:8]}/s/a/l/c/data"
        sub, received = _subscriber(broker.port, topic, protocol=mqtt.MQTTv311, client_id="emb-sub")
        _publish_qos1(broker.port, topic, b"hello", protocol=mqtt.MQTTv311)
        assert received.get(timeout=10) == (topic, b"hello", 1)
        sub.disconnect()
        sub.loop_stop()

        # Retained messages (meta, status, config topics) reach a later subscriber.
        retained_topic = topic.replace("/data", "/meta")
        client = _client(broker.port, "emb-retain", protocol=mqtt.MQTTv311)
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        client.publish(retained_topic, b"meta", qos=1, retain=True).wait_for_publish(timeout=10)
        client.disconnect()
        client.loop_stop()
        late, late_received = _subscriber(broker.port, retained_topic, protocol=mqtt.MQTTv311, client_id="emb-late")
        assert late_received.get(timeout=10) == (retained_topic, b"meta", 1)
        late.disconnect()
        late.loop_stop()

        # The documented limit: amqtt speaks MQTT 3.1.1 only.
        v5 = _client(broker.port, "emb-v5", protocol=mqtt.MQTTv5)
        codes: queue.Queue[int] = queue.Queue()
        v5.on_connect = lambda _c, _u, _f, rc, _p: codes.put(int(rc.value))
        v5.on_disconnect = lambda *_args: codes.put(-1)
        v5.connect("127.0.0.1", broker.port)
        v5.loop_start()
        try:
            assert codes.get(timeout=10) != 0
        finally:
            v5.loop_stop()
        broker.kill()
        assert not port_accepts(broker.port)


def test_start_default_broker_prefers_mosquitto(tmp_path: Path) -> None:
    broker = start_default_broker(tmp_path)
    try:
        assert isinstance(broker, MosquittoBroker)
        assert port_accepts(broker.port)
    finally:
        broker.stop()


def test_local_postgres_survives_restart_and_kill(tmp_path: Path) -> None:
    pg = LocalPostgres(tmp_path / "pg", fsync=False)
    with pg:
        assert pg.url == f"postgresql://postgres@127.0.0.1:{pg.port}/postgres"
        with psycopg.connect(pg.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (v int)")
            conn.execute("INSERT INTO t VALUES (1)")
            pg.restart()
            # The old connection is gone; a client reconnects to the same URL.
            with pytest.raises(psycopg.OperationalError):
                conn.execute("SELECT 1")
        with psycopg.connect(pg.url, autocommit=True) as conn:
            assert conn.execute("SELECT sum(v) FROM t").fetchone() == (1,)
            conn.execute("INSERT INTO t VALUES (2)")
        pg.kill()
        assert not port_accepts(pg.port)
        pg.start()  # crash recovery replays the WAL: the committed row is there
        with psycopg.connect(pg.url) as conn:
            assert conn.execute("SELECT sum(v) FROM t").fetchone() == (3,)
    assert not pg.is_running()


def test_local_postgres_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with MosquittoBroker(data_dir=tmp_path / "mq") as broker, pytest.raises(ServiceStartError, match="in use"):
        LocalPostgres(tmp_path / "pg", port=broker.port).start()


def test_demo_service_selection_prefers_environment_then_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.harness.selection import LOCAL_MQTT_PORT, LOCAL_PG_PORT, resolve_services

    monkeypatch.setenv("DATAFACTORY_DATABASE_URL", "postgresql://u:secret@db.example:5432/x")
    monkeypatch.setenv("DATAFACTORY_MQTT_URL", "mqtt://broker.example:1883")
    chosen = resolve_services(tmp_path)
    assert (chosen.database_origin, chosen.mqtt_origin) == ("environment", "environment")
    assert chosen.database_url.endswith("db.example:5432/x") and chosen.owned == []

    monkeypatch.delenv("DATAFACTORY_DATABASE_URL")
    monkeypatch.delenv("DATAFACTORY_MQTT_URL")
    if not (port_accepts(LOCAL_PG_PORT) and port_accepts(LOCAL_MQTT_PORT)):
        pytest.skip("the shared PostgreSQL/Mosquitto are not running on their standard ports")
    chosen = resolve_services(tmp_path)
    assert (chosen.database_origin, chosen.mqtt_origin) == ("local", "local")
    assert chosen.mqtt_url == f"mqtt://127.0.0.1:{LOCAL_MQTT_PORT}" and chosen.owned == []
    assert not (tmp_path / "pg").exists()  # nothing private was started
