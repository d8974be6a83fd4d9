"""The Sparkplug B host against a third-party edge node: Eclipse Tahu's JavaScript client (npm sparkplug-client,
``tests/peers/sparkplug/edge.js``) on the real broker. The node writes a ground-truth record of every value it
was handed; the test compares it with (a) what our decoder reads from the very messages on the broker — every
datatype exactly, 64-bit and float32/float64 extremes, strings, nulls, compressed envelopes, aliases past 2³² —
and (b) what the gateway published: every bound value at its metric timestamp, the sequence wrap without a
gap, one deliberate gap answered by one rebirth, DDEATH and NDEATH (the MQTT will after an abrupt disconnect)
marking exactly the metrics born in the session."""

from __future__ import annotations

import json
import math
import shutil
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from datafactory.contract.quality import BAD_NO_COMMUNICATION
from gateway.sparkplug_decode import Decoded, Refused, flatten, unwrap
from tests.support.gateway_env import GatewayThread, collect, plant

PEER = Path(__file__).parent / "peers" / "sparkplug"
CELL = "assembly/line-1/asm-01"
NODE_METRICS = ["Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Float", "Double",
                "Boolean", "String", "Text", "DateTime", "UUID", "Tick"]  # fmt: skip
NUMERIC = {"Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Float", "Double",
           "Boolean", "DateTime"}  # fmt: skip
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def peer() -> Path:
    """The Tahu edge node script with its npm dependencies installed (``npm ci`` from the committed lock)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "Node.js and npm are needed for the Sparkplug conformance test (apt-get install nodejs npm)"
    if not (PEER / "node_modules" / "sparkplug-client").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=PEER, check=True, timeout=300)
    return PEER / "edge.js"


def _expected(record: dict[str, Any]) -> object:
    v = record["value"]
    if isinstance(v, dict):
        return int(v["int"]) if "int" in v else float(v["float"])
    return v


def _same(a: object, b: object) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and isinstance(b, float):
        return struct.pack("<d", a) == struct.pack("<d", b)  # bit-exact
    return a == b


class RawDecoder:
    """Decodes every Sparkplug message on the broker with our decoder, tracking aliases and types from births."""

    def __init__(self, port: int, group: str) -> None:
        self.values: list[tuple[str, str, object, int | None]] = []
        self.refused: list[Refused] = []
        self.lock = threading.Lock()
        self._aliases: dict[str, dict[int, str]] = {}
        self._types: dict[str, dict[str, int]] = {}
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-dec-{group}")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"spBv1.0/{group}/#", qos=0)
        self.client.loop_start()
        time.sleep(0.3)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        parts = msg.topic.split("/")
        kind, device = parts[2], parts[4] if len(parts) == 5 else ""
        if kind not in ("NBIRTH", "DBIRTH", "NDATA", "DDATA"):
            return
        payload = unwrap(bytes(msg.payload))
        aliases = self._aliases.setdefault(device, {})
        types = self._types.setdefault(device, {})
        out: list[Decoded] = []
        for m in payload.metrics:
            name = m.name if m.HasField("name") else aliases[int(m.alias)]
            if kind.endswith("BIRTH"):
                aliases[int(m.alias)] = name
                types[name] = int(m.datatype)
            dt = int(m.datatype) if m.HasField("datatype") else types[name]
            flatten(name, m, dt, int(payload.timestamp), out=out, refused=self.refused)
        with self.lock:
            self.values.extend((device, d.name, d.value, d.timestamp_ms) for d in out if d.name != "bdSeq")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_tahu_edge_node_every_value_exact(peer: Path, mqtt_url: str, enterprise: str, tmp_path: Path) -> None:
    port = int(mqtt_url.rsplit(":", 1)[1])
    metrics = [
        {"edge_node": "n1", "metric": name, "cell": CELL, "signal": name.lower(), "meaning": "generic"}
        for name in NODE_METRICS
    ] + [
        {"edge_node": "n1", "device": "d1", "metric": name, "cell": CELL, "signal": f"d1-{name.lower()}",
         "meaning": "generic"}
        for name in ("Temp", "Count")
    ]  # fmt: skip
    source = {"kind": "sparkplug", "id": "spb", "broker_url": mqtt_url, "group_id": enterprise,
              "rebirth_holdoff_s": 2.0, "metrics": metrics}  # fmt: skip
    cfg = plant(enterprise, sources=[source], cells=[CELL], gateway={"batch_max_samples": 50})
    truth_path = tmp_path / "truth.json"
    raw = RawDecoder(port, enterprise)
    try:
        with (
            collect(mqtt_url, f"df/v1/{enterprise}/+/+/+/+/+") as col,
            GatewayThread(cfg, mqtt_url=mqtt_url, state_dir=tmp_path) as gw,
        ):
            time.sleep(1.0)
            run = subprocess.run(
                ["node", str(peer), mqtt_url, enterprise, "n1", str(truth_path)],
                check=False, capture_output=True, text=True, timeout=90,
            )  # fmt: skip
            assert run.returncode == 0, run.stderr
            truth = json.loads(truth_path.read_text())
            values = [r for r in truth if "value" in r]
            adapter = gw.gateway._sources["spb"].adapter
            assert col.wait_for(lambda: adapter.nodes["n1"].deaths == 1, 15), adapter.details()
            time.sleep(1.0)
            node = adapter.details()["nodes"]["n1"]
            samples = col.data_samples()
    finally:
        raw.close()

    # (a) the decoder reads exactly what the edge node was handed, every datatype, from Tahu's own bytes
    assert not raw.refused
    with raw.lock:
        decoded = list(raw.values)
    assert len(decoded) == len(values) > 300
    for rec, (device, name, value, ts) in zip(values, decoded, strict=True):
        assert (device, name, ts) == (rec["device"], rec["name"], rec["ts"])
        assert _same(value, _expected(rec)), (rec, value)
    types_seen = {r["type"] for r in values}
    assert types_seen == {"Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Float",
                          "Double", "Boolean", "String", "Text", "DateTime", "UUID"}  # fmt: skip

    # (b) the host: one gap (the deliberate one), two rebirth requests (connect, gap), both answered
    births = next(r["births"] for r in truth if r["kind"] == "NDEATH")
    assert births == 2 and node["births"] == 2
    assert node["seq_gaps"] == 1 and node["rebirth_requests"] == 2 and node["undecodable"] == 0
    assert node["stale_deaths"] == 0 and node["unborn_data"] == 0 and node["state"] == "dead"
    assert node["devices"]["d1"]["deaths"] == 1

    good = {(s.signal, s.time_us): s for _, s in samples if s.quality == 0}
    for rec in values:
        signal = rec["name"].lower() if rec["device"] == "" else f"d1-{rec['name'].lower()}"
        key = (signal, rec["ts"] * 1000)
        expected = _expected(rec)
        if expected is None:
            bad = [s for _, s in samples if (s.signal, s.time_us) == key]
            assert bad and bad[0].quality != 0 and math.isnan(bad[0].value), rec
        elif rec["type"] in NUMERIC:
            # df-json/1 carries float64 values: exact wherever float64 can hold the value. Typed samples
            # (df-json/2) make int64 exact end to end; then this compares with ``expected`` itself.
            assert key in good, rec
            assert good[key].value == float(expected), (rec, good[key])
    # DDEATH: markers for d1's two metrics at the DDEATH's timestamp; NDEATH (the will): the node's metrics
    ddeath = next(r for r in truth if r["kind"] == "DDEATH")
    markers = [s for _, s in samples if s.quality == BAD_NO_COMMUNICATION]
    assert sorted(s.signal for s in markers if s.time_us == ddeath["ts"] * 1000) == ["d1-count", "d1-temp"]
    node_markers = sorted(s.signal for s in markers if not s.signal.startswith("d1-"))
    assert node_markers == sorted(n.lower() for n in NODE_METRICS)
    assert len(markers) == 2 + len(NODE_METRICS)  # d1 was already dead at the NDEATH: no second marker
