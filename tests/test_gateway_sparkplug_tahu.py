"""The Sparkplug B host against a third-party edge node: Eclipse Tahu's JavaScript client (npm sparkplug-client,
``tests/peers/sparkplug/edge.js``) on the real broker, end to end: Tahu → Mosquitto → gateway → Mosquitto →
ingest → PostgreSQL. The node writes a ground-truth record of every value it was handed; the test compares it
with (a) what our decoder reads from the very messages on the broker — every datatype exactly, 64-bit and
float32/float64 extremes, strings, nulls, compressed envelopes, aliases past 2³² — (b) what the gateway
published: every bound value exactly at its metric timestamp, the sequence wrap without a gap, one deliberate
gap answered by one rebirth, DDEATH and NDEATH (the MQTT will after an abrupt disconnect) marking exactly the
metrics born in the session, Bytes/File/DataSet refused and counted; and (c) what the database holds: every
value bit for bit with the type the births declared (Int64 extremes, 2^53+1, UInt64 max, strings), the string
over the contract's limit dead-lettered, nothing else."""

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
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from datafactory.contract.quality import BAD, BAD_NO_COMMUNICATION, BAD_SHUTDOWN, to_db
from datafactory.contract.values import MAX_STRING_BYTES
from gateway.sparkplug_decode import Decoded, Refused, flatten, unwrap
from ingest.options import IngestOptions
from ingest.worker import IngestWorker
from tests.support.gateway_env import GatewayThread, collect, plant

PEER = Path(__file__).parent / "peers" / "sparkplug"
CELL = "assembly/line-1/asm-01"
NODE_METRICS = ["Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Float", "Double",
                "Boolean", "String", "Text", "DateTime", "UUID", "Tick"]  # fmt: skip
REFUSED = {"Blob": "bytes_not_stored", "Firmware": "bytes_not_stored", "Recipe": "dataset_not_stored"}
# the declared type each birth's datatype implies (no signal_type in the bindings: learned from the births)
DECLARED = {"Int8": "int64", "Int16": "int64", "Int32": "int64", "Int64": "int64", "UInt8": "int64",
            "UInt16": "int64", "UInt32": "int64", "UInt64": "uint64", "Float": "float64", "Double": "float64",
            "Boolean": "bool", "String": "string", "Text": "string", "DateTime": "int64", "UUID": "string"}  # fmt: skip
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


def _signal(rec: dict[str, Any]) -> str:
    return rec["name"].lower() if rec["device"] == "" else f"d1-{rec['name'].lower()}"


def _start_worker(db_url: str, mqtt_url: str, enterprise: str) -> IngestWorker:
    options = IngestOptions(database_url=db_url, mqtt_url=mqtt_url, topic_filter=f"df/v1/{enterprise}/#",
                            worker=f"w-{enterprise}", session_expiry_s=300, batch_wait_s=0.05)  # fmt: skip
    worker = IngestWorker(options)
    worker.start()
    return worker


def _query(db_url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(query).fetchall()


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _stored(db_url: str) -> dict[tuple[str, int], tuple[str, object, int]]:
    """Every row in the database: (signal, time µs) → (value type, typed value, quality as unsigned 32 bits)."""
    rows = _query(
        db_url,
        "SELECT sp.signal, (extract(epoch FROM v.time) * 1000000)::bigint, v.value_type, v.value, v.value_int,"
        " v.value_bool, v.value_text, v.quality"
        " FROM sample_values v JOIN signal_paths sp ON sp.signal_id = v.signal_id",
    )
    out: dict[tuple[str, int], tuple[str, object, int]] = {}
    for signal, t, vtype, value, value_int, value_bool, value_text, quality in rows:
        typed = {"float64": value, "bool": value_bool, "string": value_text}.get(
            vtype, None if value_int is None else int(value_int)
        )
        assert (signal, int(t)) not in out, (signal, t)  # no (signal, time) in both the float64 and typed tables
        out[(signal, int(t))] = (vtype, typed, quality & 0xFFFFFFFF)
    return out


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


def test_tahu_edge_node_every_value_exact_into_the_database(
    peer: Path, mqtt_url: str, db_url: str, enterprise: str, tmp_path: Path
) -> None:
    port = int(mqtt_url.rsplit(":", 1)[1])
    metrics = [
        {"edge_node": "n1", "metric": name, "cell": CELL, "signal": name.lower(), "meaning": "generic"}
        for name in [*NODE_METRICS, *REFUSED]
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
    worker = _start_worker(db_url, mqtt_url, enterprise)
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
            rejected = adapter.counters()["rejected"]
            samples = col.data_samples()
        # the clean stop ends every signal with a Bad_Shutdown marker: once they are stored, everything before is
        shutdown = f"SELECT count(*) FROM sample_values WHERE quality = {to_db(BAD_SHUTDOWN)}"
        _wait(lambda: _query(db_url, shutdown)[0][0] >= len(metrics), 60, "every value in the database")
        offline = "SELECT count(*) FROM gateway_status WHERE NOT online"
        _wait(lambda: _query(db_url, offline)[0][0] == 1, 30, "the gateway's last status in the database")
    finally:
        worker.stop(end_session=True)
        raw.close()

    # (a) the decoder reads exactly what the edge node was handed, every datatype, from Tahu's own bytes
    assert sorted((r.name, r.reason) for r in raw.refused) == sorted([*REFUSED.items()] * 2)  # both NBIRTHs
    with raw.lock:
        decoded = list(raw.values)
    assert len(decoded) == len(values) > 300
    for rec, (device, name, value, ts) in zip(values, decoded, strict=True):
        assert (device, name, ts) == (rec["device"], rec["name"], rec["ts"])
        assert _same(value, _expected(rec)), (rec, value)
    types_seen = {r["type"] for r in values}
    assert types_seen == set(DECLARED)

    # (b) the host: one gap (the deliberate one), two rebirth requests (connect, gap), both answered
    births = next(r["births"] for r in truth if r["kind"] == "NDEATH")
    assert births == 2 and node["births"] == 2
    assert node["seq_gaps"] == 1 and node["rebirth_requests"] == 2 and node["undecodable"] == 0
    assert node["stale_deaths"] == 0 and node["unborn_data"] == 0 and node["state"] == "dead"
    assert node["devices"]["d1"]["deaths"] == 1
    # Bytes, File and DataSet are no time series: refused with their reason and counted, once per birth
    assert node["dead_letters"] == {"bytes_not_stored": 4, "dataset_not_stored": 2} and rejected == 6

    # The long String is over the contract's limit: the collector's decoder refuses it, as ingest does in (c).
    too_long = [r for r in values if isinstance(r["value"], str) and len(r["value"].encode()) > MAX_STRING_BYTES]
    assert too_long
    good = {(s.signal, s.time_us): s for _, s in samples if s.quality == 0}
    for rec in (r for r in values if r not in too_long):
        key, expected = (_signal(rec), rec["ts"] * 1000), _expected(rec)
        if expected is None:
            bad = [s for _, s in samples if (s.signal, s.time_us) == key]
            assert bad and bad[0].quality == BAD and isinstance(bad[0].value, float) and math.isnan(bad[0].value), rec
        else:
            assert key in good and _same(good[key].value, expected), (rec, good.get(key))
    # DDEATH: markers for d1's two metrics at the DDEATH's timestamp; NDEATH (the will): the node's metrics
    ddeath = next(r for r in truth if r["kind"] == "DDEATH")
    markers = [s for _, s in samples if s.quality == BAD_NO_COMMUNICATION]
    assert sorted(s.signal for s in markers if s.time_us == ddeath["ts"] * 1000) == ["d1-count", "d1-temp"]
    node_markers = sorted(s.signal for s in markers if not s.signal.startswith("d1-"))
    assert node_markers == sorted(n.lower() for n in NODE_METRICS)
    assert len(markers) == 2 + len(NODE_METRICS)  # d1 was already dead at the NDEATH: no second marker

    # (c) the database: every value the edge node was handed, bit for bit, typed as its birth declared; the long
    # String dead-lettered by ingest (string_too_long), never truncated
    stored = _stored(db_url)
    expected_rows = {
        (_signal(r), r["ts"] * 1000): (DECLARED[r["type"]], _expected(r), BAD if r["value"] is None else 0)
        for r in values
        if r not in too_long
    }
    got = {k: v for k, v in stored.items() if k in expected_rows}
    assert {k: (t, ("f", struct.pack("<d", v)) if type(v) is float else v, q) for k, (t, v, q) in got.items()} == {
        k: (t, ("f", struct.pack("<d", v)) if type(v) is float else v, q) for k, (t, v, q) in expected_rows.items()
    }
    assert all(type(got[k][1]) is type(v[1]) for k, v in expected_rows.items())  # True is not 1, 1 is not 1.0
    extra = {k: v for k, v in stored.items() if k not in expected_rows}
    assert {q for _, _, q in extra.values()} == {BAD_NO_COMMUNICATION, BAD_SHUTDOWN}, extra  # markers only
    # Bytes/File/DataSet reach the platform as counts: the gateway's last status, stored by ingest
    (status,) = _query(db_url, "SELECT status FROM gateway_status")[0]
    assert status["sources"]["spb"]["rejected"] == 6
    assert status["sources"]["spb"]["nodes"]["n1"]["dead_letters"] == {"bytes_not_stored": 4, "dataset_not_stored": 2}
    dead = _query(db_url, "SELECT reason, detail FROM dead_letters")
    assert [r[0] for r in dead] == ["string_too_long"] * len(too_long), dead
    types = dict(_query(db_url, "SELECT name, signal_type FROM signals"))
    never_born = dict.fromkeys((n.lower() for n in REFUSED), "float64")  # no value ever: the config's natural type
    assert types == {_signal(r): DECLARED[r["type"]] for r in values} | never_born
