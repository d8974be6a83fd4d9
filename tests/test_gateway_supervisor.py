"""The gateway's supervisor and source states, against real asyncua servers and the real Mosquitto.

* jittered backoff, one implementation;
* a broker URL that is no MQTT URL stops ``gateway run`` with exit 2 and one line, no traceback;
* a wrong password puts the source into ``failed`` after ONE attempt (no 5 s loop that locks the account);
* an untrusted gateway certificate: the clear message in the status and in ``opcua browse``, no traceback;
* a source that comes back clears its old error from the status.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import yaml
from asyncua import ua
from asyncua.common.utils import ServiceError
from click.testing import CliRunner

from app.cli.main import cli
from gateway.opcua_cert import create_certificate
from gateway.supervisor import Backoff
from tests.support.gateway_env import GatewayThread, OpcUaTestServer, collect, free_port, plant, plant_doc
from tests.support.opcua_secure import Users, secure_server

pytestmark = pytest.mark.integration
CELL = "press/line-1/press-01"


def _node() -> dict:
    return {"node_id": "ns=2;s=Power", "cell": CELL, "signal": "power", "meaning": "power_kw"}


def _user_source(endpoint: str, mode: str, fp: str) -> dict:
    security = {"policy": "basic256sha256", "mode": mode, "trusted_server_fingerprints": [fp]}
    auth = {"kind": "username", "username_env": "PLC_USER", "password_env": "PLC_PASSWORD"}
    return {"kind": "opcua", "id": "plc", "endpoint": endpoint, "security": security, "auth": auth, "nodes": [_node()]}


def _status(col) -> dict:
    raw = col.last("/status")
    return orjson.loads(raw) if raw else {}


def _source_status(col, sid: str = "plc") -> dict:
    return (_status(col).get("sources") or {}).get(sid) or {}


def test_backoff_doubles_to_the_cap_with_bounded_jitter() -> None:
    low, high = Backoff(0.5, 5.0, rng=lambda: 0.0), Backoff(0.5, 5.0, rng=lambda: 1.0)
    assert [round(low.next(), 3) for _ in range(6)] == [0.4, 0.8, 1.6, 3.2, 4.0, 4.0]
    assert [round(high.next(), 3) for _ in range(6)] == [0.6, 1.2, 2.4, 4.8, 6.0, 6.0]
    low.reset()
    assert round(low.next(), 3) == 0.4
    spread = {round(Backoff(1.0, 1.0).next(), 6) for _ in range(50)}
    assert len(spread) > 10 and all(0.8 <= d <= 1.2 for d in spread)  # gateways do not retry in lock-step


def test_bad_mqtt_url_stops_the_gateway_with_exit_2_and_one_line(tmp_path, enterprise) -> None:
    config = tmp_path / "plant.yaml"
    config.write_text(yaml.safe_dump(plant_doc(enterprise, sources=[], cells=[CELL])))
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "app", "gateway", "run", "--config", str(config)),
            *("--mqtt-url", "http://127.0.0.1:1/", "--state-dir", str(tmp_path / "state")),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path.cwd(),
    )
    assert proc.returncode == 2, proc.stderr
    assert "must start with mqtt:// or mqtts://" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_wrong_password_fails_after_one_attempt(tmp_path, mqtt_url, enterprise, monkeypatch) -> None:
    users = Users()
    server, fp, _ = secure_server(tmp_path, [ua.SecurityPolicyType.Basic256Sha256_Sign], users=users)
    create_certificate(tmp_path / "opcua")
    monkeypatch.setenv("PLC_USER", "operator")
    monkeypatch.setenv("PLC_PASSWORD", "wrong")
    source = _user_source(server.endpoint, "sign", fp)
    try:
        cfg = plant(enterprise, sources=[source], cells=[CELL])
        with (
            collect(mqtt_url, f"df/v1/{enterprise}/+/_gw/+/status") as col,
            GatewayThread(cfg, mqtt_url=mqtt_url, state_dir=tmp_path) as gw,
        ):
            assert col.wait_for(lambda: _source_status(col).get("state") == "failed"), _status(col)
            time.sleep(8)  # the old runner retried every 5 s at most: this would be two more attempts
            st = _source_status(col)
            assert st["state"] == "failed"
            assert "rejected the user identity" in st["last_error"] and "$PLC_USER" in st["last_error"]
            assert st["next_attempt"] is not None and st["attempts"] == 1
            assert len(users.attempts) == 1, users.attempts
            assert gw.gateway.source_states()["plc"] == "failed"
    finally:
        server.close()


def _untrusting_server(tmp_path: Path, users: Users) -> tuple[OpcUaTestServer, str]:
    async def untrusted(cert: object, app: object) -> None:  # a server whose trust list lacks our certificate
        raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)

    server, fp, _ = secure_server(
        tmp_path, [ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt], users=users, client_validator=untrusted
    )
    return server, fp


def test_untrusted_gateway_certificate_is_named_in_status_and_browse(
    tmp_path, mqtt_url, enterprise, monkeypatch
) -> None:
    users = Users()
    server, fp = _untrusting_server(tmp_path, users)
    gw_cert = create_certificate(tmp_path / "opcua")
    monkeypatch.setenv("PLC_USER", "operator")
    monkeypatch.setenv("PLC_PASSWORD", "s3cret")
    source = _user_source(server.endpoint, "sign_and_encrypt", fp)
    want = f"the server rejected this gateway's certificate {gw_cert.certificate} (SHA-256 {gw_cert.fingerprint}"
    try:
        cfg = plant(enterprise, sources=[source], cells=[CELL])
        with (
            collect(mqtt_url, f"df/v1/{enterprise}/+/_gw/+/status") as col,
            GatewayThread(cfg, mqtt_url=mqtt_url, state_dir=tmp_path),
        ):
            assert col.wait_for(lambda: _source_status(col).get("state") == "failed"), _status(col)
            error = _source_status(col)["last_error"]
            assert want in error and "trust it on the server" in error and "rejected folder" in error
        result = CliRunner().invoke(
            cli,
            [
                *("opcua", "browse", server.endpoint, "--policy", "basic256sha256", "--mode", "sign_and_encrypt"),
                *("--trust-fingerprint", fp, "--username-env", "PLC_USER", "--password-env", "PLC_PASSWORD"),
                *("--state-dir", str(tmp_path)),
            ],
        )
        assert result.exit_code == 1
        assert want in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert users.attempts == []  # the password never went to a server that refused the channel
    finally:
        server.close()


def test_recovery_clears_the_old_error(tmp_path, mqtt_url, enterprise) -> None:
    port = free_port()
    endpoint = f"opc.tcp://127.0.0.1:{port}/df-test/"
    source: dict[str, object] = {
        "kind": "opcua",
        "id": "plc",
        "endpoint": endpoint,
        "security": {"policy": "none", "mode": "none"},
    }
    source["nodes"] = [_node()]
    cfg = plant(enterprise, sources=[source], cells=[CELL])
    server = None
    try:
        with (
            collect(mqtt_url, f"df/v1/{enterprise}/+/_gw/+/status") as col,
            GatewayThread(cfg, mqtt_url=mqtt_url, state_dir=tmp_path),
        ):
            assert col.wait_for(lambda: "connection refused" in (_source_status(col).get("last_error") or ""))
            assert _source_status(col)["state"] == "disconnected"  # retryable: backing off, not failed
            server = OpcUaTestServer(port, {"Power": 0.0}).start()
            assert col.wait_for(lambda: _source_status(col).get("state") == "connected", timeout=20)
            st = _source_status(col)
            assert st["last_error"] is None and st["next_attempt"] is None
    finally:
        if server is not None:
            server.close()


def test_cancel_repeats_until_a_task_that_swallowed_the_cancellation_stops() -> None:
    """Python 3.11's asyncio.wait_for (inside pymodbus and asyncua requests) drops a cancellation that arrives as
    the awaited reply completes; a source polling back to back hits that. ``cancel`` must still stop the task,
    or an abandoned source keeps running after shutdown and writes into a closed buffer."""
    import asyncio

    from gateway.supervisor import Supervisor

    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if swallowed < 3:  # what a library that loses the cancellation looks like from outside
                    swallowed += 1
                    continue
                raise

    async def scenario() -> bool:
        sup = Supervisor(on_fatal=lambda err: None)
        task = sup.spawn("stubborn", stubborn)
        await asyncio.sleep(0.05)
        await sup.cancel("stubborn", timeout_s=3)
        return task.done()

    assert asyncio.run(scenario()) and swallowed == 3
