"""OPC-UA channel security: SignAndEncrypt + user name against a real asyncua server; untrusted servers refused."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from asyncua import ua
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import User, UserRole
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from datafactory.config.models import OpcUaSecurity, UsernameAuth
from datafactory.errors import ConnectionLost
from gateway import opcua_session
from gateway.opcua_cert import create_certificate
from tests.support.gateway_env import GatewayThread, OpcUaTestServer, collect, free_port, plant

pytestmark = pytest.mark.integration
CELL = "press/line-1/press-01"
SERVER_URI = "urn:datafactory:test-server"


class _Users:
    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None):
        if username == "operator" and password == "s3cret":
            return User(role=UserRole.User)
        return None


def _server_certificate(directory: Path) -> tuple[Path, Path, str]:
    key = cert_gen.generate_private_key()
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        "df test server",
        {},
        [x509.UniformResourceIdentifier(SERVER_URI), x509.DNSName("127.0.0.1")],
        extended=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    cert_path, key_path = directory / "server-cert.der", directory / "server-key.pem"
    der = cert.public_bytes(Encoding.DER)
    cert_path.write_bytes(der)
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return cert_path, key_path, opcua_session.fingerprint(der)


def _secure_server(tmp_path: Path, policies: list[ua.SecurityPolicyType]) -> tuple[OpcUaTestServer, str, Path]:
    cert_path, key_path, fp = _server_certificate(tmp_path)

    async def setup(server: Any) -> None:
        await server.set_application_uri(SERVER_URI)
        await server.load_certificate(str(cert_path))
        await server.load_private_key(str(key_path))
        server.set_security_policy(policies)
        server.set_identity_tokens([ua.UserNameIdentityToken])

    server = OpcUaTestServer(free_port(), {"Power": 0.0}, setup=setup, user_manager=_Users()).start()
    return server, fp, cert_path


def test_sign_and_encrypt_with_username(tmp_path, mqtt_url, enterprise, monkeypatch) -> None:
    server, fp, _ = _secure_server(tmp_path, [ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
    gw_cert = create_certificate(tmp_path / "gw")
    monkeypatch.setenv("PLC_USER", "operator")
    monkeypatch.setenv("PLC_PASSWORD", "s3cret")
    source = {
        "kind": "opcua",
        "id": "plc",
        "endpoint": server.endpoint,
        "security": {
            "policy": "basic256sha256",
            "mode": "sign_and_encrypt",
            "certificate": str(gw_cert.certificate),
            "private_key": str(gw_cert.private_key),
            "trusted_server_fingerprints": [":".join(fp[i : i + 2] for i in range(0, len(fp), 2)).upper()],
        },
        "auth": {"kind": "username", "username_env": "PLC_USER", "password_env": "PLC_PASSWORD"},
        "publishing_interval_ms": 100,
        "nodes": [{"node_id": "ns=2;s=Power", "cell": CELL, "signal": "power", "meaning": "power_kw"}],
    }
    try:
        cfg = plant(enterprise, sources=[source], cells=[CELL])
        with (
            collect(mqtt_url, f"df/v1/{enterprise}/+/+/+/+/data") as col,
            GatewayThread(cfg, mqtt_url=mqtt_url, state_dir=tmp_path) as gw,
        ):
            assert col.wait_for(lambda: gw.gateway.source_states().get("plc") == "connected"), gw.gateway._sources
            server.write("Power", 42.0)
            assert col.wait_for(lambda: 42.0 in [s.value for _, s in col.data_samples()])
    finally:
        server.close()


def _connect(endpoint: str, security: OpcUaSecurity, auth: object, state_dir: Path) -> None:
    async def attempt() -> None:
        client = await opcua_session.connect(endpoint, security, auth, state_dir=state_dir)
        await client.disconnect()

    asyncio.run(attempt())


def test_untrusted_server_certificate_is_refused_naming_its_fingerprint(tmp_path, monkeypatch) -> None:
    server, fp, server_cert = _secure_server(tmp_path, [ua.SecurityPolicyType.Basic256Sha256_Sign])
    create_certificate(tmp_path / "opcua")  # default location under the state dir
    monkeypatch.setenv("PLC_USER", "operator")
    monkeypatch.setenv("PLC_PASSWORD", "s3cret")
    auth = UsernameAuth(kind="username", username_env="PLC_USER", password_env="PLC_PASSWORD")
    try:
        other = "ab" * 32
        pinned_elsewhere = OpcUaSecurity(policy="basic256sha256", mode="sign", trusted_server_fingerprints=[other])
        with pytest.raises(ConnectionLost) as exc:
            _connect(server.endpoint, pinned_elsewhere, auth, tmp_path)
        assert fp in str(exc.value) and "not trusted" in str(exc.value)
        assert exc.value.retryable is False

        trust_dir = tmp_path / "trusted"
        trust_dir.mkdir()
        (trust_dir / "plc.der").write_bytes(server_cert.read_bytes())
        trusted = OpcUaSecurity(policy="basic256sha256", mode="sign", trust_dir=str(trust_dir))
        _connect(server.endpoint, trusted, auth, tmp_path)  # trusted through the trust list: connects

        monkeypatch.setenv("PLC_PASSWORD", "wrong")
        with pytest.raises(ConnectionLost, match="user identity"):
            _connect(server.endpoint, trusted, auth, tmp_path)

        encrypt = OpcUaSecurity(policy="basic256sha256", mode="sign_and_encrypt", trust_dir=str(trust_dir))
        with pytest.raises(ConnectionLost, match="offers no endpoint"):
            _connect(server.endpoint, encrypt, auth, tmp_path)
    finally:
        server.close()


@pytest.mark.parametrize(
    ("policy", "server_policy"),
    [
        ("aes128_sha256_rsaoaep", ua.SecurityPolicyType.Aes128Sha256RsaOaep_SignAndEncrypt),
        ("aes256_sha256_rsapss", ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt),
    ],
)
def test_aes_policies_connect(tmp_path, monkeypatch, policy, server_policy) -> None:
    server, fp, _ = _secure_server(tmp_path, [server_policy])
    create_certificate(tmp_path / "opcua")
    monkeypatch.setenv("PLC_USER", "operator")
    monkeypatch.setenv("PLC_PASSWORD", "s3cret")
    auth = UsernameAuth(kind="username", username_env="PLC_USER", password_env="PLC_PASSWORD")
    try:
        security = OpcUaSecurity(policy=policy, mode="sign_and_encrypt", trusted_server_fingerprints=[fp])
        _connect(server.endpoint, security, auth, tmp_path)
    finally:
        server.close()
