"""The generated broker configuration's TLS listener, against a REAL Mosquitto: a certificate signed by a test CA, the
right and a wrong password over TLS, and plain MQTT on the TLS port getting no CONNACK."""

from __future__ import annotations

import ipaddress
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from click.testing import CliRunner
from paho.mqtt.enums import CallbackAPIVersion

from ops.broker_config import INGEST_USER, gateway_user, password_var
from ops.cli import broker
from tests.support.gateway_env import free_port
from tests.support.secured_broker import Client, mosquitto, plant_config

pytestmark = pytest.mark.integration


def _certificates(tmp: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    now = datetime.now(UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("df test ca"))
        .issuer_name(name("df test ca"))
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = tmp / "ca.pem", tmp / "server.pem", tmp / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


def test_tls_listener(tmp_path: Path, enterprise: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ca, cert, key = _certificates(tmp_path)
    user, password = gateway_user(enterprise, "dg-1", "gw-1"), f"pw-{uuid.uuid4().hex}"
    monkeypatch.setenv(password_var(user), password)
    monkeypatch.setenv(password_var(INGEST_USER), "ingest-pw-1")
    plain, tls = free_port(), free_port()
    out = tmp_path / "broker"
    args = [
        "config",
        "--config",
        str(plant_config(enterprise, tmp_path)),
        "--out",
        str(out),
        "--port",
        str(plain),
        "--bind",
        "127.0.0.1",
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        "--tls-port",
        str(tls),
    ]
    result = CliRunner().invoke(broker, args)
    assert result.exit_code == 0, result.output
    with mosquitto(out / "mosquitto.conf", tls):
        secure = Client(tls, user, password, ca=ca)
        refused = Client(tls, user, "wrong", ca=ca)
        try:
            assert secure.connack == [0] and refused.connack and refused.connack[0] != 0
            info = secure.c.publish(f"df/v1/{enterprise}/dg-1/a/l/c/data", b"x", qos=1)
            assert secure.wait(lambda: info.mid in secure.pubacks) and secure.pubacks[info.mid] in (0, 0x10)
        finally:
            secure.close()
            refused.close()
        # Plain MQTT on the TLS port: the broker drops it during the handshake, no CONNACK ever comes.
        plain_client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        plain_client.username_pw_set(user, password)
        answers: list[Any] = []
        plain_client.on_connect = lambda *args: answers.append(args)
        plain_client.connect("127.0.0.1", tls)
        plain_client.loop_start()
        time.sleep(1.0)
        plain_client.loop_stop()
        plain_client.disconnect()
        assert answers == []
