"""Broker security against a REAL Mosquitto started with the generated configuration on a free port."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from datafactory.contract.payload import MAX_MESSAGE_BYTES
from ops.broker_config import DEPLOY_USER, INGEST_USER, gateway_user, mosquitto_hash, password_var
from ops.cli import broker
from tests.support.gateway_env import free_port
from tests.support.secured_broker import Broker, Client, mosquitto, plant_config

pytestmark = pytest.mark.integration
NOT_AUTHORIZED = 0x87


@pytest.fixture
def secured_broker(tmp_path: Path, enterprise: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Broker]:
    ent_a, ent_b = enterprise, enterprise + "-b"
    users = {
        "a": gateway_user(ent_a, "dg-1", "gw-1"),
        "b": gateway_user(ent_b, "dg-1", "gw-1"),
        "ingest": INGEST_USER,
        "deploy": DEPLOY_USER,
    }
    passwords = {name: f"pw-{uuid.uuid4().hex}" for name in users.values()}
    for name, pw in passwords.items():
        monkeypatch.setenv(password_var(name), pw)
    port, out = free_port(), tmp_path / "broker"
    result = CliRunner().invoke(
        broker,
        [
            "config",
            "--config",
            str(plant_config(ent_a, tmp_path)),
            str(plant_config(ent_b, tmp_path)),
            "--out",
            str(out),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
        ],
    )
    assert result.exit_code == 0, result.output
    for pw in passwords.values():
        assert pw not in result.output
    assert (out / "passwd").stat().st_mode & 0o777 == 0o600
    with mosquitto(out / "mosquitto.conf", port):
        yield Broker(port, out / "mosquitto.log", passwords, users, ent_a, ent_b)


def test_gateway_cannot_publish_outside_its_prefix(secured_broker: Broker) -> None:
    b = secured_broker
    ingest = Client(b.port, b.users["ingest"], b.passwords[INGEST_USER])
    shared = Client(b.port, b.users["ingest"], b.passwords[INGEST_USER])
    gw_a = Client(b.port, b.users["a"], b.passwords[b.users["a"]], client_id="gw-a")
    try:
        assert ingest.connack == [0] and gw_a.connack == [0]
        ingest.c.subscribe("df/v1/#", qos=1)
        shared.c.subscribe("$share/ingest/df/v1/#", qos=1)
        assert ingest.wait(lambda: ingest.subacks) and shared.wait(lambda: shared.subacks)
        assert ingest.subacks == [[1]] and shared.subacks == [[1]]
        spoof = gw_a.c.publish(f"df/v1/{b.enterprise_b}/dg-1/stamping/line1/press-01/data", b"spoof", qos=1)
        own = gw_a.c.publish(f"df/v1/{b.enterprise_a}/dg-1/stamping/line1/press-01/data", b"own", qos=1)
        assert gw_a.wait(lambda: len(gw_a.pubacks) == 2)
        assert gw_a.pubacks[spoof.mid] == NOT_AUTHORIZED  # Mosquitto 2.0.11 answers MQTT 5 PUBACK 0x87
        assert gw_a.pubacks[own.mid] in (0, 0x10)  # success / no matching subscribers
        assert ingest.wait(lambda: ingest.messages) and shared.wait(lambda: shared.messages)
        time.sleep(0.3)  # the refused message would have arrived by now
        assert ingest.messages == [(f"df/v1/{b.enterprise_a}/dg-1/stamping/line1/press-01/data", b"own")]
        assert [p for _, p in shared.messages] == [b"own"]
    finally:
        for client in (ingest, shared, gw_a):
            client.close()


def test_gateway_reads_only_its_own_config_topic(secured_broker: Broker) -> None:
    b = secured_broker
    deploy = Client(b.port, DEPLOY_USER, b.passwords[DEPLOY_USER])
    gw_a = Client(b.port, b.users["a"], b.passwords[b.users["a"]])
    try:
        own_topic = f"df/v1/{b.enterprise_a}/dg-1/_gw/gw-1/config"
        other_topic = f"df/v1/{b.enterprise_b}/dg-1/_gw/gw-1/config"
        for topic in (own_topic, other_topic):
            info = deploy.c.publish(topic, topic.encode(), qos=1, retain=True)
            assert deploy.wait(lambda info=info: info.mid in deploy.pubacks)
            assert deploy.pubacks[info.mid] in (0, 0x10)
        # Mosquitto 2.0.11 grants the SUBACK but checks the ACL on every delivery: B's retained config (and any
        # other message of plant B) never reaches gateway A.
        gw_a.c.subscribe(other_topic, qos=1)
        gw_a.c.subscribe(f"df/v1/{b.enterprise_b}/#", qos=1)
        gw_a.c.subscribe(own_topic, qos=1)
        assert gw_a.wait(lambda: len(gw_a.subacks) == 3)
        assert gw_a.wait(lambda: gw_a.messages)
        gw_b = Client(b.port, b.users["b"], b.passwords[b.users["b"]])
        info = gw_b.c.publish(f"df/v1/{b.enterprise_b}/dg-1/x/y/z/data", b"b-data", qos=1)
        assert gw_b.wait(lambda: info.mid in gw_b.pubacks)
        gw_b.close()
        assert gw_b.pubacks[info.mid] == 0  # accepted: A's subscription matches, but the ACL stops delivery
        time.sleep(0.3)
        assert gw_a.messages == [(own_topic, own_topic.encode())]
    finally:
        deploy.close()
        gw_a.close()


def test_clients_without_valid_credentials_cannot_connect(secured_broker: Broker) -> None:
    b = secured_broker
    anonymous = Client(b.port, None, None)
    wrong = Client(b.port, b.users["a"], "not-the-password")
    try:
        assert anonymous.connack and anonymous.connack[0] != 0
        assert wrong.connack and wrong.connack[0] != 0
    finally:
        anonymous.close()
        wrong.close()
    text = b.log.read_text()
    assert "not authorised" in text
    for pw in b.passwords.values():
        assert pw not in text


def test_missing_password_is_an_error_naming_the_variable(tmp_path: Path, enterprise: str) -> None:
    result = CliRunner().invoke(
        broker, ["config", "--config", str(plant_config(enterprise, tmp_path)), "--out", str(tmp_path / "o")], env={}
    )
    assert result.exit_code != 0
    assert password_var(gateway_user(enterprise, "dg-1", "gw-1")) in result.output
    assert password_var(INGEST_USER) in result.output


def test_hash_format_matches_mosquitto_passwd(tmp_path: Path) -> None:
    """Our $7$ hash verifies with Mosquitto's own tool: re-hashing with its salt and iterations gives its hash."""
    passwd = tmp_path / "p"
    passwd.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), "u", "s3cret!"], check=True)
    _, _, iterations, salt64, _ = passwd.read_text().strip().split(":", 1)[1].split("$")
    import base64

    ours = mosquitto_hash("s3cret!", iterations=int(iterations), salt=base64.b64decode(salt64))
    assert passwd.read_text().strip() == f"u:{ours}"


def test_broker_log_detectors_see_denials_and_password_guessing(
    secured_broker: Broker, db_url: str, tmp_path: Path
) -> None:

    import psycopg

    from datafactory.db import registry
    from ops.detectors import WatchSettings, run

    b = secured_broker
    gw_a = Client(b.port, b.users["a"], b.passwords[b.users["a"]], client_id="gw-a-detect")
    ingest = Client(b.port, INGEST_USER, b.passwords[INGEST_USER])
    info = gw_a.c.publish(f"df/v1/{b.enterprise_b}/dg-1/a/l/c/data", b"x", qos=1)
    assert gw_a.wait(lambda: info.mid in gw_a.pubacks)
    for _ in range(6):
        Client(b.port, b.users["b"], "guess").close()
    gw_a.close()
    ingest.close()
    # Only the gateways are "known" here, so ingest's connection counts as an unknown account.
    known = tmp_path / "known"
    known.write_text("".join(f"{u}:x\n" for u in (b.users["a"], b.users["b"])))
    with psycopg.connect(db_url) as conn:
        plant_a = registry.upsert_plant(conn, b.enterprise_a, "dg-1")
        conn.commit()
        settings = WatchSettings(mosquitto_log=b.log, mosquitto_passwd=known, window_minutes=5)
        deadline = time.monotonic() + 5
        while "Denied PUBLISH" not in b.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        alerts = {(a.detector, a.subject): a for a in run(conn, settings, now=datetime.now(UTC) + timedelta(seconds=2))}
        denied = alerts[("publish_denied", b.users["a"])]
        assert denied.plant_id == plant_a and denied.details["topics"] == [f"df/v1/{b.enterprise_b}/dg-1/a/l/c/data"]
        assert alerts[("auth_failures", "127.0.0.1")].observed >= 6
        assert ("unknown_client", f"{INGEST_USER}@127.0.0.1") in alerts
        assert not any(d == "unknown_client" and b.users["a"] in s for d, s in alerts)
        stored = conn.execute("SELECT count(*) FROM security_alerts").fetchone()
        assert stored == (len(alerts),)


def test_broker_refuses_a_message_over_the_contract_limit(secured_broker: Broker) -> None:
    """The generated config enforces MAX_MESSAGE_BYTES; one byte less passes (so the test can fail)."""
    b = secured_broker
    topic = f"df/v1/{b.enterprise_a}/dg-1/stamping/line1/press-01/data"
    ingest = Client(b.port, b.users["ingest"], b.passwords[INGEST_USER])
    gw_a = Client(b.port, b.users["a"], b.passwords[b.users["a"]], client_id="gw-a")
    try:
        ingest.c.subscribe("df/v1/#", qos=1)
        assert ingest.wait(lambda: ingest.subacks)
        gw_a.c.publish(topic, b"x" * (MAX_MESSAGE_BYTES + 1), qos=1)
        gw_a.c.publish(topic, b"y" * MAX_MESSAGE_BYTES, qos=1)
        assert ingest.wait(lambda: ingest.messages, timeout=10)
        time.sleep(0.5)  # the oversized one, published first, would have arrived by now
        assert [(t, len(p), p[:1]) for t, p in ingest.messages] == [(topic, MAX_MESSAGE_BYTES, b"y")]
    finally:
        ingest.close()
        gw_a.close()


def test_shipped_compose_config_has_the_same_limit() -> None:
    conf = (Path(__file__).resolve().parents[1] / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    assert f"\nmessage_size_limit {MAX_MESSAGE_BYTES}\n" in conf
