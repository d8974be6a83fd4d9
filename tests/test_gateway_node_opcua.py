"""The OPC-UA source against a third-party stack: a node-opcua server (npm, ``tests/peers/opcua/server.js``) that
offers only Basic256Sha256 + SignAndEncrypt, requires a user name and checks client certificates against its
own trust list. The gateway pins the server's certificate, the server trusts the gateway's; every value the
server produced reaches PostgreSQL through Mosquitto and ingest, and a wrong password puts its source into
``failed`` with the server's refusal in words, after one attempt."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import orjson
import psycopg
import pytest

from gateway.opcua_cert import create_certificate
from ingest.options import IngestOptions
from ingest.worker import IngestWorker
from tests.support.gateway_env import GatewayThread, collect, free_port, plant

PEER = Path(__file__).parent / "peers" / "opcua"
CELL = "press/line-1/press-01"
COUNT = 40
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def peer() -> Path:
    """The server script with node-opcua installed from the committed lock (npm's own cache makes reruns fast)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("Node.js and npm are needed for the node-opcua interoperability test (apt-get install nodejs npm)")
    if not (PEER / "node_modules" / "node-opcua").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=PEER, check=True, timeout=600)
    return PEER / "server.js"


class NodeOpcUaServer:
    def __init__(self, script: Path, port: int, pki: Path) -> None:
        self.proc = subprocess.Popen(
            ["node", str(script), str(port), str(pki), str(COUNT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.events: list[dict] = []
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        assert self._ready.wait(60), "node-opcua server did not start:\n" + "".join(self.lines)
        ready = next(e for e in self.events if e.get("ready"))
        self.fingerprint, self.ns = ready["fingerprint"], ready["ns"]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith("{"):
                self.events.append(json.loads(line))
                if self.events[-1].get("ready"):
                    self._ready.set()

    def start_counting(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def done(self) -> bool:
        return any("done" in e for e in self.events)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def _source(sid: str, port: int, *, fingerprint: str, ns: int, password_env: str, cell_signal: str) -> dict:
    return {
        "kind": "opcua",
        "id": sid,
        "endpoint": f"opc.tcp://127.0.0.1:{port}/df-peer",
        "security": {
            "policy": "basic256sha256",
            "mode": "sign_and_encrypt",
            "trusted_server_fingerprints": [fingerprint],
        },
        "auth": {"kind": "username", "username_env": "PLC_USER", "password_env": password_env},
        "publishing_interval_ms": 100,
        "sampling_interval_ms": 0,
        "nodes": [
            {"node_id": f"ns={ns};s=Counter", "cell": CELL, "signal": f"counter{cell_signal}", "meaning": "generic",
             "queue_size": 50},
            {"node_id": f"ns={ns};s=Const", "cell": CELL, "signal": f"const{cell_signal}", "meaning": "generic"},
        ],
    }  # fmt: skip


def _good(db_url: str, enterprise: str) -> dict[str, list[float]]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT p.signal, s.value FROM samples s JOIN signal_paths p ON p.signal_id = s.signal_id"
            " WHERE p.enterprise = %s AND df_quality_severity(s.quality) = 'good' ORDER BY p.signal, s.time",
            (enterprise,),
        ).fetchall()
    out: dict[str, list[float]] = {}
    for sig, v in rows:
        out.setdefault(sig, []).append(v)
    return out


@pytest.fixture
def plc_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLC_USER", "operator")
    monkeypatch.setenv("PLC_PASSWORD", "s3cret")
    monkeypatch.setenv("PLC_BAD_PASSWORD", "wrong")


@pytest.mark.usefixtures("plc_env")
def test_signandencrypt_with_user_name_against_node_opcua(peer, tmp_path, db_url, mqtt_url, enterprise) -> None:
    state = tmp_path / "state"
    cert = create_certificate(state / "opcua", hostname="127.0.0.1")
    pki = tmp_path / "pki"
    (pki / "trusted" / "certs").mkdir(parents=True)
    shutil.copy(cert.certificate, pki / "trusted" / "certs" / "gateway.der")  # the server operator trusts us
    port = free_port()
    server = NodeOpcUaServer(peer, port, pki)
    sources = [
        _source("plc", port, fingerprint=server.fingerprint, ns=server.ns, password_env="PLC_PASSWORD", cell_signal=""),
        _source(
            "plc-bad",
            port,
            fingerprint=server.fingerprint,
            ns=server.ns,
            password_env="PLC_BAD_PASSWORD",
            cell_signal="_bad",
        ),
    ]
    cfg = plant(enterprise, sources=sources, cells=[CELL])
    options = IngestOptions(
        database_url=db_url, mqtt_url=mqtt_url, topic_filter=f"df/v1/{enterprise}/#", worker=f"nop-{enterprise}"
    )
    try:
        with (
            IngestWorker(options),
            collect(mqtt_url, f"df/v1/{enterprise}/site-1/_gw/+/status") as col,
            GatewayThread(cfg, mqtt_url=mqtt_url, state_dir=state) as gt,
        ):
            deadline = time.monotonic() + 60
            while _good(db_url, enterprise).get("counter") != [0.0]:  # subscribed: the initial value is stored
                assert time.monotonic() < deadline, (_good(db_url, enterprise), gt.gateway.source_states())
                time.sleep(0.2)
            server.start_counting()
            while not (server.done() and len(_good(db_url, enterprise).get("counter", [])) >= COUNT + 1):
                assert time.monotonic() < deadline, (_good(db_url, enterprise), gt.gateway.source_states())
                time.sleep(0.3)
            states = gt.gateway.source_states()
            bad = gt.gateway._sources["plc-bad"].state
            status = orjson.loads(col.last("/status") or b"{}")
    finally:
        server.close()

    good = _good(db_url, enterprise)
    assert good["counter"] == [float(i) for i in range(COUNT + 1)]  # 0 at subscription, then every change
    assert good["const"] == [42.0]
    assert "counter_bad" not in good and "const_bad" not in good
    assert states["plc"] == "connected"
    assert states["plc-bad"] == "failed" and bad.attempts == 1, (states, bad)
    assert "rejected the user identity" in (bad.last_error or ""), bad.last_error
    assert status["sources"]["plc-bad"]["state"] == "failed"
    assert "rejected the user identity" in status["sources"]["plc-bad"]["last_error"]
