"""OPC-UA channel security: SignAndEncrypt + user name against a real asyncua server; untrusted servers refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from asyncua import ua

from datafactory.config.models import OpcUaSecurity, SecurityMode, SecurityPolicy, UsernameAuth
from datafactory.errors import ConnectionLost
from gateway import opcua_session
from gateway.opcua_cert import create_certificate
from tests.support.gateway_env import GatewayThread, OpcUaTestServer, collect, plant
from tests.support.opcua_secure import secure_server

pytestmark = pytest.mark.integration
CELL = "press/line-1/press-01"


def _secure_server(tmp_path: Path, policies: list[ua.SecurityPolicyType]) -> tuple[OpcUaTestServer, str, Path]:
    return secure_server(tmp_path, policies)


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
        pinned_elsewhere = OpcUaSecurity(
            policy=SecurityPolicy.BASIC256SHA256, mode=SecurityMode.SIGN, trusted_server_fingerprints=[other]
        )
        with pytest.raises(ConnectionLost) as exc:
            _connect(server.endpoint, pinned_elsewhere, auth, tmp_path)
        assert fp in str(exc.value) and "not trusted" in str(exc.value)
        assert exc.value.retryable is False

        trust_dir = tmp_path / "trusted"
        trust_dir.mkdir()
        (trust_dir / "plc.der").write_bytes(server_cert.read_bytes())
        trusted = OpcUaSecurity(policy=SecurityPolicy.BASIC256SHA256, mode=SecurityMode.SIGN, trust_dir=str(trust_dir))
        _connect(server.endpoint, trusted, auth, tmp_path)  # trusted through the trust list: connects

        monkeypatch.setenv("PLC_PASSWORD", "wrong")
        with pytest.raises(ConnectionLost, match="user identity"):
            _connect(server.endpoint, trusted, auth, tmp_path)

        encrypt = OpcUaSecurity(
            policy=SecurityPolicy.BASIC256SHA256, mode=SecurityMode.SIGN_AND_ENCRYPT, trust_dir=str(trust_dir)
        )
        with pytest.raises(ConnectionLost, match="offers no endpoint"):
            _connect(server.endpoint, encrypt, auth, tmp_path)
    finally:
        server.close()


@pytest.mark.parametrize(
    ("policy", "server_policy"),
    [
        (SecurityPolicy.AES128_SHA256_RSAOAEP, ua.SecurityPolicyType.Aes128Sha256RsaOaep_SignAndEncrypt),
        (SecurityPolicy.AES256_SHA256_RSAPSS, ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt),
    ],
)
def test_aes_policies_connect(tmp_path, monkeypatch, policy, server_policy) -> None:
    server, fp, _ = _secure_server(tmp_path, [server_policy])
    create_certificate(tmp_path / "opcua")
    monkeypatch.setenv("PLC_USER", "operator")
    monkeypatch.setenv("PLC_PASSWORD", "s3cret")
    auth = UsernameAuth(kind="username", username_env="PLC_USER", password_env="PLC_PASSWORD")
    try:
        security = OpcUaSecurity(policy=policy, mode=SecurityMode.SIGN_AND_ENCRYPT, trusted_server_fingerprints=[fp])
        _connect(server.endpoint, security, auth, tmp_path)
    finally:
        server.close()


def test_policy_none_with_password_needs_a_pinned_server_or_an_explicit_risk(enterprise) -> None:
    from datafactory.errors import ConfigError

    source = {
        "kind": "opcua",
        "id": "plc",
        "endpoint": "opc.tcp://127.0.0.1:4840/",
        "security": {"policy": "none", "mode": "none"},
        "auth": {"kind": "username", "username_env": "PLC_USER", "password_env": "PLC_PASSWORD"},
        "nodes": [{"node_id": "ns=2;s=Power", "cell": CELL, "signal": "power", "meaning": "power_kw"}],
    }
    with pytest.raises(ConfigError, match="send_password_to_unverified_server"):
        plant(enterprise, sources=[source], cells=[CELL])
    pinned = source | {"security": {"policy": "none", "mode": "none", "trusted_server_fingerprints": ["ab" * 32]}}
    plant(enterprise, sources=[pinned], cells=[CELL])
    risky = source | {"security": {"policy": "none", "mode": "none", "send_password_to_unverified_server": True}}
    plant(enterprise, sources=[risky], cells=[CELL])


def test_policy_none_with_pinned_fingerprint_refuses_an_impostor(tmp_path, monkeypatch) -> None:
    """The genuine server offers policy none and encrypts the password for its certificate; an impostor at the
    same address shows its own certificate (refused: no password sent) or a copy of the genuine one (the
    password goes encrypted to a key it lacks). Without the pin, the opt-in path hands it the password."""
    from tests.support.opcua_secure import Users, server_certificate

    monkeypatch.setenv("PLC_USER", "operator")
    monkeypatch.setenv("PLC_PASSWORD", "s3cret")
    auth = UsernameAuth(kind="username", username_env="PLC_USER", password_env="PLC_PASSWORD")
    genuine_cert = server_certificate(tmp_path / "genuine", "genuine")
    none_plus = [ua.SecurityPolicyType.NoSecurity, ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt]
    pinned = OpcUaSecurity(
        policy=SecurityPolicy.NONE, mode=SecurityMode.NONE, trusted_server_fingerprints=[genuine_cert[2]]
    )

    genuine, _, _ = secure_server(tmp_path, none_plus, certificate=genuine_cert)
    try:
        _connect(genuine.endpoint, pinned, auth, tmp_path)  # the real server: connects with the password
    finally:
        genuine.close()

    impostor_users = Users()
    # On another port: reusing the genuine one would race other tests for it; who answers is what matters.
    impostor, impostor_fp, _ = secure_server(tmp_path / "impostor", none_plus, users=impostor_users)
    try:
        with pytest.raises(ConnectionLost) as exc:
            _connect(impostor.endpoint, pinned, auth, tmp_path)
        assert impostor_fp in str(exc.value) and "not trusted" in str(exc.value)
        assert exc.value.retryable is False
        assert impostor_users.attempts == []  # the impostor never saw a user name, let alone the password
    finally:
        impostor.close()

    # Attack succeeding on the unprotected path: no pin, risk accepted, an impostor offering only policy none.
    thief_users = Users()
    thief, _, _ = secure_server(tmp_path / "thief", [ua.SecurityPolicyType.NoSecurity], users=thief_users)
    try:
        unverified = OpcUaSecurity(
            policy=SecurityPolicy.NONE, mode=SecurityMode.NONE, send_password_to_unverified_server=True
        )
        _connect(thief.endpoint, unverified, auth, tmp_path)
        assert ("operator", "s3cret") in thief_users.attempts
        # …and the pinned config refuses that same thief before sending anything.
        thief_users.attempts.clear()
        with pytest.raises(ConnectionLost, match="not trusted"):
            _connect(thief.endpoint, pinned, auth, tmp_path)
        assert thief_users.attempts == []
    finally:
        thief.close()
